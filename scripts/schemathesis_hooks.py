"""Schemathesis hooks for scripts/schemathesis.

An `Idempotency-Key` reused with another request is refused by design
(`422 validation_failed`, field `Idempotency-Key`, docs/api.md), and the
fuzzer draws keys from a small space ("0", "A", ...), so it would reuse them
across unrelated requests, which no client does, and report the refusal as a
valid request rejected. A well-formed key is therefore made unique per
request; a malformed one (a negative case) is sent as drawn, so the
header's own validation is still fuzzed.
"""

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid

import schemathesis

KEY = "Idempotency-Key"
WELL_FORMED = re.compile(r"[\x21-\x7e]{1,255}")


@schemathesis.hook("before_call")
def unique_idempotency_keys(ctx, case, **kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == KEY.lower() and isinstance(value, str) and WELL_FORMED.fullmatch(value):
            headers[name] = f"st-{uuid.uuid4()}"


# References to state the fuzzer cannot know. Each refusal is by design and
# tested in the Rust suites; here they would be reported as valid requests
# rejected, so the state is provided instead of the check being loosened.
#
# A business's owner must be a registered user (`422` otherwise): the user a
# `POST /v1/businesses` names is registered first, as the app would.
BASE_URL = os.environ.get("INVITED_ST_URL", "")
API_KEY = os.environ.get("INVITED_ST_KEY", "")


def register_user(user_id):
    request = urllib.request.Request(
        f"{BASE_URL}/v1/users/{urllib.parse.quote(user_id, safe='')}",
        method="PUT",
        data=json.dumps({"email": f"st-{uuid.uuid4().hex}@example.com"}).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except (urllib.error.URLError, ValueError):
        pass  # a malformed id (a negative case) is refused; the test goes on


@schemathesis.hook("before_call")
def register_the_owner(ctx, case, **kwargs):
    if case.method.upper() == "POST" and case.path == "/v1/businesses":
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("owner_user_id"), str):
            register_user(body["owner_user_id"])


# A `cursor` is opaque: only one the API returned is valid (`422` otherwise,
# tested in src/http/paging.rs and src/http/tests.rs). One drawn for a
# positive case is dropped (a negative case keeps its malformed cursor).
def is_positive(case):
    meta = getattr(case, "meta", None)
    mode = getattr(getattr(meta, "generation", None), "mode", None)
    return str(getattr(mode, "value", mode)) == "positive"


@schemathesis.hook("before_call")
def drop_drawn_cursors(ctx, case, **kwargs):
    if isinstance(case.query, dict) and "cursor" in case.query and is_positive(case):
        del case.query["cursor"]

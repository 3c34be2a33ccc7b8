"""Schemathesis hooks for scripts/schemathesis.

An `Idempotency-Key` reused with another request is refused by design
(`422 validation_failed`, field `Idempotency-Key`, docs/api.md), and the
fuzzer draws keys from a small space ("0", "A", ...), so it would reuse them
across unrelated requests, which no client does, and report the refusal as a
valid request rejected. A well-formed key is therefore made unique per
request; a malformed one (a negative case) is sent as drawn, so the
header's own validation is still fuzzed.
"""

import re
import uuid

import schemathesis

KEY = "Idempotency-Key"
WELL_FORMED = re.compile(r"[\x21-\x7e]{1,255}")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == KEY.lower() and isinstance(value, str) and WELL_FORMED.fullmatch(value):
            headers[name] = f"st-{uuid.uuid4()}"

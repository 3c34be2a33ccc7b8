//! Every email's HTML part, looked at in a real browser (issue 13): each
//! template the daemon ships, with each of its sample contexts (the catalog
//! `invited templates check` renders), in each shipped locale, rendered by
//! the library as delivery renders it, opened in headless Chromium at a
//! phone's width (375 px) and at a desktop's (1280 px), checked for what a
//! reader needs, and screenshotted to `target/test-output/email_html/`.
//!
//! A template or locale added later is covered without touching this file:
//! the list comes from `TemplateName::ALL`, `EmailContent::samples` and the
//! locale directories.

mod support;

use std::path::Path;

use invited::mail::contexts::Brand;
use invited::mail::{EmailContent, TemplateName, Templates};
use serde::Deserialize;
use serde_json::{Value, json};
use support::browser::Browser;

/// A phone (iPhone X to 13 mini: 375 × 812 CSS px) and a desktop window.
const VIEWPORTS: [(u32, u32); 2] = [(375, 812), (1280, 900)];

/// Smallest height and width of a button-like link: a fingertip is about
/// 40 px wide.
const MIN_BUTTON_PX: f64 = 40.0;
/// Smallest font size of any visible text.
const MIN_FONT_PX: f64 = 12.0;

/// What the page measures about itself; see [`CHECKS`].
#[derive(Debug, Deserialize)]
struct Findings {
    problems: Vec<String>,
}

#[tokio::test]
async fn every_email_reads_well_at_phone_and_desktop_width() {
    // The directory the daemon loads by default, through the same loader.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let templates = Templates::load(&dir, "en-US").expect("the shipped templates load");
    let locales: Vec<String> = templates.locales().map(str::to_owned).collect();
    assert!(
        !locales.is_empty(),
        "no locale directories in {}",
        dir.display()
    );

    let browser = Browser::start("email_html").await;
    let mut problems = Vec::new();
    let mut pages = 0;
    for (width, height) in VIEWPORTS {
        browser.set_viewport(width, height).await;
        for locale in &locales {
            for name in TemplateName::ALL {
                for (n, content) in EmailContent::samples(name).into_iter().enumerate() {
                    let context = content.render_context(&Brand::sample());
                    let rendered = templates
                        .render(name, locale, &context)
                        .unwrap_or_else(|e| panic!("{name} sample {n} in {locale}: {e}"));
                    let page = format!("{locale}/{name}-{n}");
                    browser.open_html(&page, &rendered.html).await;
                    let found = check_page(&browser, &context, &rendered.locale).await;
                    let shot = browser.screenshot(&format!("{page}-{width}")).await;
                    pages += 1;
                    problems.extend(found.into_iter().map(|p| {
                        format!(
                            "{name} (sample {n}) in {locale} at {width}×{height}: {p} [{}]",
                            shot.display()
                        )
                    }));
                }
            }
        }
    }
    browser.close().await;
    assert!(pages >= 2 * TemplateName::ALL.len() * locales.len());
    assert!(
        problems.is_empty(),
        "{} problem(s) in the emails' HTML:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The checks catch each fault they look for: a page with every one of
/// them, at the phone's width, gets a problem for each (so a check that
/// stopped working fails here, not silently above).
#[tokio::test]
async fn the_checks_catch_what_a_reader_would_miss() {
    let browser = Browser::start("email_html_checks").await;
    browser.set_viewport(375, 812).await;
    let context = json!({
        "business_name": "Hidden Business Ltd",
        "partner_business_name": "Far Away Partners",
        "message": "A visible line\nA line in grey on grey at 0 opacity",
        "accept_url": "https://app.example.test/accept?token=t",
        "decline_url": "https://app.example.test/decline?token=t",
    });
    let page = r#"<!DOCTYPE html><html lang="en"><body style="margin:0">
<table width="600"><tr><td>A table wider than a phone</td></tr></table>
<p style="display:none">Hidden Business Ltd</p>
<p style="position:absolute;left:340px;white-space:nowrap">Far Away Partners</p>
<blockquote>A visible line</blockquote>
<p style="opacity:0">A line in grey on grey at 0 opacity</p>
<p style="font-size:10px">The fine print</p>
<a href="/invitations/accept?token=t">A relative link</a>
<a href="https://app.example.test/accept?token=t" style="background:#2563eb;color:#fff;padding:2px 4px">Go</a>
<a href="https://app.example.test/elsewhere" style="position:absolute;left:300px;white-space:nowrap">A link past the edge</a>
</body></html>"#;
    browser.open_html("faults", page).await;
    browser
        .wait_until("the page has loaded", "document.readyState === 'complete'")
        .await;
    assert_eq!(browser.find_all("a").await.len(), 3);
    let found = check_page(&browser, &context, "fr-FR").await;
    browser.screenshot("faults").await;
    browser.close().await;
    for expected in [
        "scrolls sideways: the page is 600 px wide in a 375 px viewport",
        r#"<html lang="en">, expected "fr-FR""#,
        r#"link "A relative link" has href "/invitations/accept?token=t", not an absolute http(s) URL"#,
        r#"button link "Go" is "#,
        r#"link "A link past the edge" reaches outside the 375 px viewport"#,
        r#"text "The fine print" is 10 px, smaller than 12 px"#,
        r#""Hidden Business Ltd" is not shown"#,
        r#""Far Away Partners" is not entirely inside the 375 px viewport"#,
        r#""A line in grey on grey at 0 opacity" is not shown"#,
        "no visible link to https://app.example.test/decline?token=t",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "no problem saying {expected:?} among:\n{}",
            found.join("\n")
        );
    }
    assert!(
        !found.iter().any(|p| p.contains("A visible line")),
        "{found:#?}"
    );
    assert_eq!(found.len(), 10, "{found:#?}");
}

/// An email with a link to give and only a text link to it gets the "no
/// button" problem (the page above has a button, too small).
#[tokio::test]
async fn the_checks_want_a_button_where_there_is_a_link() {
    let browser = Browser::start("email_html_checks_button").await;
    browser.set_viewport(375, 812).await;
    let context = json!({ "accept_url": "https://app.example.test/accept?token=t" });
    browser
        .open_html(
            "text_link",
            r#"<!DOCTYPE html><html lang="en-US"><body><p><a href="https://app.example.test/accept?token=t">Accept</a></p></body></html>"#,
        )
        .await;
    let found = check_page(&browser, &context, "en-US").await;
    browser.close().await;
    assert_eq!(
        found,
        ["no button: the email has a link to give but shows none as a button"]
    );
}

/// Runs [`CHECKS`] on the open page; the problems found.
async fn check_page(browser: &Browser, context: &Value, locale: &str) -> Vec<String> {
    let found: Findings = browser.js(CHECKS, [expectations(context, locale)]).await;
    found.problems
}

/// What a reader of this email must see, from its context: the business
/// names and each line of the personal message (the text the inviter
/// typed), and every link the context carries (an accept link, later a
/// decline or partner link) as a link.
fn expectations(context: &Value, locale: &str) -> Value {
    let mut texts = Vec::new();
    for key in ["business_name", "partner_business_name"] {
        if let Some(name) = context.get(key).and_then(Value::as_str)
            && !name.is_empty()
        {
            texts.push(name.to_owned());
        }
    }
    if let Some(message) = context.get("message").and_then(Value::as_str) {
        texts.extend(
            message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    let mut links = Vec::new();
    collect_urls(context, &mut links);
    json!({
        "texts": texts,
        "links": links,
        "locale": locale,
        "minButtonPx": MIN_BUTTON_PX,
        "minFontPx": MIN_FONT_PX,
    })
}

/// Every string of the context that is a URL (not one inside the personal
/// message: that is text the inviter typed, never a link).
fn collect_urls(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s)
            if (s.starts_with("https://") || s.starts_with("http://"))
                && !s.contains(char::is_whitespace) =>
        {
            out.push(s.clone())
        }
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| *k != "message")
            .for_each(|(_, v)| collect_urls(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_urls(v, out)),
        _ => {}
    }
}

/// Runs in the page with the [`expectations`] as `arguments[0]`; returns
/// `{problems: [...]}`, each a sentence naming what is wrong.
///
/// - no horizontal scrolling: the document is no wider than the viewport;
/// - `<html lang>` is the locale rendered (screen readers pick the voice);
/// - every link has an absolute `http(s)` (or `mailto`) URL: a relative one
///   leads nowhere from a mail client;
/// - every link is visible and entirely inside the viewport's width;
/// - a button-like link (one painted as a box: its own background or
///   border) is at least `minButtonPx` tall and wide, so a thumb can hit it;
/// - an email whose context carries a URL links it, and has a button;
/// - no visible text is smaller than `minFontPx`;
/// - the business names and the personal message are visible, inside the
///   viewport's width.
const CHECKS: &str = r#"
const want = arguments[0];
const problems = [];
const root = document.documentElement;
const width = root.clientWidth;
const shown = (el) => el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true });
const boxes = (node) => {
  const range = document.createRange();
  range.selectNodeContents(node);
  return [...range.getClientRects()].filter((r) => r.width > 0 && r.height > 0);
};
const inside = (rects) => rects.length > 0 && rects.every((r) => r.left >= -0.5 && r.right <= width + 0.5);
const px = (r) => `${Math.round(r.width)}×${Math.round(r.height)} px at x=${Math.round(r.left)}..${Math.round(r.right)}`;

if (root.scrollWidth > width || document.body.scrollWidth > width) {
  problems.push(`scrolls sideways: the page is ${Math.max(root.scrollWidth, document.body.scrollWidth)} px wide in a ${width} px viewport`);
}
if (root.lang !== want.locale) {
  problems.push(`<html lang="${root.lang}">, expected "${want.locale}"`);
}

const links = [...document.querySelectorAll("a")];
let buttons = 0;
for (const a of links) {
  const label = `link "${a.textContent.trim().slice(0, 60)}"`;
  const raw = a.getAttribute("href");
  let url = null;
  try { url = new URL(raw); } catch (_) {}
  if (!url || !["https:", "http:", "mailto:"].includes(url.protocol)) {
    problems.push(`${label} has href ${JSON.stringify(raw)}, not an absolute http(s) URL`);
  }
  const rects = [...a.getClientRects()].filter((r) => r.width > 0 && r.height > 0);
  if (!shown(a) || rects.length === 0) {
    problems.push(`${label} is not visible`);
    continue;
  }
  if (!inside(rects)) {
    problems.push(`${label} reaches outside the ${width} px viewport: ${rects.map(px).join(", ")}`);
  }
  const style = getComputedStyle(a);
  const painted = style.backgroundColor !== "rgba(0, 0, 0, 0)" && style.backgroundColor !== "transparent";
  const bordered = parseFloat(style.borderTopWidth) > 0 && parseFloat(style.borderBottomWidth) > 0;
  if (painted || bordered) {
    buttons += 1;
    const box = a.getBoundingClientRect();
    if (box.height < want.minButtonPx || box.width < want.minButtonPx) {
      problems.push(`button ${label} is ${px(box)}, smaller than ${want.minButtonPx} px to tap`);
    }
  }
}
for (const href of want.links) {
  const linked = links.some((a) => a.getAttribute("href") === href && shown(a));
  if (!linked) {
    problems.push(`no visible link to ${href} (from the email's context)`);
  }
}
if (want.links.length > 0 && buttons === 0) {
  problems.push("no button: the email has a link to give but shows none as a button");
}

const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const texts = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (node.data.trim() === "" || !node.parentElement || !shown(node.parentElement)) continue;
  texts.push(node);
  const size = parseFloat(getComputedStyle(node.parentElement).fontSize);
  if (size < want.minFontPx) {
    problems.push(`text "${node.data.trim().slice(0, 60)}" is ${size} px, smaller than ${want.minFontPx} px`);
  }
}
for (const text of want.texts) {
  const holders = texts.filter((node) => node.data.includes(text));
  if (holders.length === 0) {
    problems.push(`"${text}" is not shown`);
  } else if (!holders.some((node) => inside(boxes(node)))) {
    problems.push(`"${text}" is not entirely inside the ${width} px viewport: ${boxes(holders[0]).map(px).join(", ")}`);
  }
}
return { problems };
"#;

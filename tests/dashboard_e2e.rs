//! End to end: the staff dashboard at `/dashboard` against the real daemon. Logins and
//! cookies, shop and role rules, the CSRF field, escaping, the redeem and adjust forms,
//! and a real browser (Debian's headless Chromium driven by playwright-core,
//! `tests/dashboard/member.mjs`) searching a member, redeeming and saving a screenshot.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

const READER: &str = "reader-token-0123456789";
const TILL: &str = "till-token-0123456789ab";
const OTHER: &str = "other-shop-token-012345";

fn setup() -> Setup {
    let setup = Setup::new(1024 * 1024);
    let path = setup.config_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[tokens]]\nname = \"reports\"\ntoken = \"{READER}\"\nrole = \"read\"\nshops = [\"demo\"]\n\n\
         [[tokens]]\nname = \"till-1\"\ntoken = \"{TILL}\"\nrole = \"write\"\nshops = [\"demo\"]\n\n\
         [[tokens]]\nname = \"other-staff\"\ntoken = \"{OTHER}\"\nrole = \"admin\"\nshops = [\"other\"]\n"
    ));
    std::fs::write(&path, text).unwrap();
    setup
}

/// A client that does not follow redirects (the tests look at them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

async fn send(req: reqwest::RequestBuilder) -> Page {
    let r = req.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (location, set_cookie) = (header("location"), header("set-cookie"));
    Page {
        status: r.status().as_u16(),
        location,
        set_cookie,
        body: r.text().await.unwrap(),
    }
}

/// GET a dashboard page with the session cookie of `token`.
async fn get(d: &Daemon, path: &str, token: Option<&str>) -> Page {
    let mut req = browser().get(d.url(path));
    if let Some(t) = token {
        req = req.header("Cookie", format!("loyaltyd_token={t}"));
    }
    send(req).await
}

/// POST a form with the session cookie of `token`.
async fn post(d: &Daemon, path: &str, token: Option<&str>, fields: &[(&str, &str)]) -> Page {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut req = browser()
        .post(d.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(t) = token {
        req = req.header("Cookie", format!("loyaltyd_token={t}"));
    }
    send(req).await
}

/// The value of the first hidden field `name` on a page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in:\n{html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Ada (11 points) from a signed Shopify webhook; her member id.
async fn ada(d: &Daemon) -> String {
    let (s, r) = post_shopify(d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["points"], 11, "{r}");
    r["member_id"].as_str().unwrap().to_string()
}

async fn available(d: &Daemon, member: &str) -> i64 {
    let (s, m) = admin_get(d, &format!("/v1/shops/demo/members/{member}")).await;
    assert_eq!(s, 200, "{m}");
    m["points"]["available"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn logging_in_takes_a_valid_token_and_sets_a_strict_http_only_cookie() {
    let setup = setup();
    let d = setup.start();

    // Without a session every page goes to the login page, remembering where it was.
    let p = get(&d, "/dashboard/shops/demo/members?q=ada", None).await;
    assert_eq!(p.status, 303);
    assert_eq!(
        p.location.as_deref(),
        Some("/dashboard/login?next=%2Fdashboard%2Fshops%2Fdemo%2Fmembers%3Fq%3Dada")
    );
    let p = get(&d, "/dashboard", Some("not-a-token")).await;
    assert_eq!(p.status, 303);
    let p = get(&d, "/dashboard/login?next=/dashboard/shops/demo", None).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("name=\"token\""));

    // A bad token: the form again, 401, no cookie.
    let p = post(
        &d,
        "/dashboard/login",
        None,
        &[("token", "wrong-token"), ("next", "/dashboard/shops/demo")],
    )
    .await;
    assert_eq!(p.status, 401);
    assert!(p.set_cookie.is_none(), "{:?}", p.set_cookie);
    assert!(p.body.contains("That token is not valid."));
    assert!(p.body.contains("name=\"token\""));
    assert!(!p.body.contains("wrong-token"), "the token is echoed");
    let p = post(&d, "/dashboard/login", None, &[("token", "")]).await;
    assert_eq!(p.status, 401);
    assert!(p.set_cookie.is_none());

    // A good token: a cookie, and back to where the user was going (never elsewhere).
    let p = post(
        &d,
        "/dashboard/login",
        None,
        &[("token", TILL), ("next", "/dashboard/shops/demo")],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/dashboard/shops/demo"));
    let cookie = p.set_cookie.unwrap();
    assert!(
        cookie.starts_with(&format!("loyaltyd_token={TILL};")),
        "{cookie}"
    );
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age="] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"));
    let p = send(
        browser()
            .post(d.url("/dashboard/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Forwarded-Proto", "https")
            .body(format!("token={TILL}&next=https%3A%2F%2Fevil.example%2F")),
    )
    .await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/dashboard"));
    assert!(p.set_cookie.unwrap().contains("; Secure"));

    // The shop picker lists the token's shops; pages never carry the token.
    let p = get(&d, "/dashboard", Some(TILL)).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("/dashboard/shops/demo"));
    assert!(!p.body.contains("/dashboard/shops/other"));
    assert!(p.body.contains("till-1"));
    assert!(!p.body.contains(TILL), "the token is in the page");
    let p = get(&d, "/dashboard/shops/demo", Some(TILL)).await;
    assert_eq!(p.status, 200);
    assert!(!p.body.contains(TILL), "the token is in the page");

    // Logging out clears the cookie (with the form's CSRF field).
    let csrf = field(&p.body, "csrf");
    let p = post(&d, "/dashboard/logout", Some(TILL), &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 303);
    assert!(p.set_cookie.unwrap().contains("Max-Age=0"));

    // The stylesheet and script are served by the daemon.
    for (path, ty) in [
        ("/dashboard/static/app.css", "text/css"),
        ("/dashboard/static/app.js", "text/javascript"),
    ] {
        let r = browser().get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ty));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shops_and_roles_follow_the_token() {
    let setup = setup();
    let d = setup.start();
    let member = ada(&d).await;
    let page = format!("/dashboard/shops/demo/members/{member}");

    // Read-only: sees the member, gets no forms, and a redeem POST is refused.
    let p = get(&d, &page, Some(READER)).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("id=\"balance-available\">11<"));
    assert!(
        !p.body.contains("redeem-form"),
        "a read-only token sees the redeem form"
    );
    let csrf = field(&p.body, "csrf");
    let p = post(
        &d,
        &format!("{page}/redeem"),
        Some(READER),
        &[
            ("csrf", &csrf),
            ("idempotency_key", "read-1"),
            ("reward", "free-coffee"),
        ],
    )
    .await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.body.contains("needs the write role"), "{}", p.body);
    let p = post(
        &d,
        &format!("{page}/adjust"),
        Some(READER),
        &[("csrf", &csrf), ("points", "5"), ("reason", "x")],
    )
    .await;
    assert_eq!(p.status, 403);
    assert_eq!(available(&d, &member).await, 11);

    // A token of another shop: 403 on every page of this shop, its own shop only.
    for path in [
        "/dashboard/shops/demo".to_string(),
        "/dashboard/shops/demo/members?q=ada".to_string(),
        page.clone(),
    ] {
        let p = get(&d, &path, Some(OTHER)).await;
        assert_eq!(p.status, 403, "{path}");
        assert!(p.body.contains("not allowed for this shop"), "{}", p.body);
        assert!(!p.body.contains("ada@example.com"));
    }
    let p = get(&d, "/dashboard", Some(OTHER)).await;
    assert!(p.body.contains("/dashboard/shops/other") && !p.body.contains("/dashboard/shops/demo"));
    let p = get(&d, "/dashboard/shops/other", Some(OTHER)).await;
    assert_eq!(p.status, 200);
    let other_csrf = field(&p.body, "csrf");
    let p = post(
        &d,
        &format!("{page}/redeem"),
        Some(OTHER),
        &[("csrf", &other_csrf), ("reward", "free-coffee")],
    )
    .await;
    assert_eq!(p.status, 403);
    assert_eq!(available(&d, &member).await, 11);

    // Unknown shops and members are 404 pages.
    let p = get(&d, "/dashboard/shops/nowhere", Some(ADMIN_TOKEN)).await;
    assert_eq!(p.status, 404);
    let p = get(
        &d,
        "/dashboard/shops/demo/members/m_00000000000000000000",
        Some(TILL),
    )
    .await;
    assert_eq!(p.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_need_their_csrf_field_and_post_once() {
    let setup = setup();
    let d = setup.start();
    let member = ada(&d).await;
    let page = format!("/dashboard/shops/demo/members/{member}");
    let p = get(&d, &page, Some(TILL)).await;
    assert_eq!(p.status, 200);
    let (csrf, key) = (field(&p.body, "csrf"), field(&p.body, "idempotency_key"));
    assert_eq!(csrf.len(), 64);

    // No field, a wrong one, or another session's: refused, nothing posted.
    let admin_page = get(&d, &page, Some(ADMIN_TOKEN)).await;
    let admin_csrf = field(&admin_page.body, "csrf");
    assert_ne!(admin_csrf, csrf);
    for bad in ["", "00", &"0".repeat(64), &admin_csrf] {
        let p = post(
            &d,
            &format!("{page}/redeem"),
            Some(TILL),
            &[
                ("csrf", bad),
                ("idempotency_key", &key),
                ("reward", "free-coffee"),
            ],
        )
        .await;
        assert_eq!(p.status, 403, "csrf {bad:?}: {}", p.body);
        assert!(p.body.contains("form has expired"));
    }
    let p = post(
        &d,
        &format!("{page}/redeem"),
        Some(TILL),
        &[("idempotency_key", &key), ("reward", "free-coffee")],
    )
    .await;
    assert_eq!(p.status, 403);
    assert_eq!(available(&d, &member).await, 11);

    // With it: posted, back to the member page with the new balance.
    let form = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", key.as_str()),
        ("reward", "free-coffee"),
        ("points", ""),
    ];
    let p = post(&d, &format!("{page}/redeem"), Some(TILL), &form).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let back = p.location.unwrap();
    assert!(back.starts_with(&format!("{page}?done=")), "{back}");
    assert_eq!(available(&d, &member).await, 6);
    let shown = get(&d, &back, Some(TILL)).await;
    assert!(shown.body.contains("id=\"balance-available\">6<"));
    assert!(
        shown.body.contains("Redeemed 5 points for Free coffee"),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("Balance now 6 available."));
    assert!(
        shown.body.contains("By till-1"),
        "the actor is the token's name"
    );

    // The same rendered form submitted again posts nothing more.
    let p = post(&d, &format!("{page}/redeem"), Some(TILL), &form).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some(back.as_str()));
    assert_eq!(available(&d, &member).await, 6);
    // The same key with other values is refused.
    let p = post(
        &d,
        &format!("{page}/redeem"),
        Some(TILL),
        &[("csrf", &csrf), ("idempotency_key", &key), ("points", "1")],
    )
    .await;
    assert_eq!(p.status, 409, "{}", p.body);
    assert_eq!(available(&d, &member).await, 6);

    // Too few points: the page again with the reason (422), nothing posted.
    let p = post(
        &d,
        &format!("{page}/redeem"),
        Some(TILL),
        &[
            ("csrf", &csrf),
            ("idempotency_key", "k-big"),
            ("points", "500"),
        ],
    )
    .await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(p
        .body
        .contains("Not enough points: 500 needed, 6 available"));
    assert_eq!(available(&d, &member).await, 6);

    // Adjust: a reason is required; then +4 with a reason.
    let p = post(
        &d,
        &format!("{page}/adjust"),
        Some(TILL),
        &[
            ("csrf", &csrf),
            ("idempotency_key", "adj-1"),
            ("points", "4"),
            ("reason", " "),
        ],
    )
    .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("needs a reason"));
    let p = post(
        &d,
        &format!("{page}/adjust"),
        Some(TILL),
        &[
            ("csrf", &csrf),
            ("idempotency_key", "adj-2"),
            ("points", "+4"),
            ("reason", "goodwill"),
        ],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(available(&d, &member).await, 10);
    let shown = get(&d, &p.location.unwrap(), Some(TILL)).await;
    assert!(
        shown.body.contains("Adjusted by +4 points"),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("Reason: goodwill"));

    // The journal names the dashboard user as the actor, like the API does.
    let (_, ledger) = admin_get(&d, &format!("/v1/shops/demo/members/{member}/ledger")).await;
    let actors: Vec<&str> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert_eq!(actors, vec!["till-1", "till-1"], "{ledger}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_escape_what_members_and_webhooks_bring() {
    let setup = setup();
    let d = setup.start();
    let evil = String::from_utf8(order(7)).unwrap().replace(
        "\"first_name\": \"Ada\"",
        "\"first_name\": \"<script>alert(1)</script>\"",
    );
    assert!(evil.contains("<script>"));
    let (s, r) = post_shopify(
        &d,
        "demo",
        "orders/paid",
        "wh-evil",
        evil.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let member = r["member_id"].as_str().unwrap();
    for path in [
        format!("/dashboard/shops/demo/members/{member}"),
        "/dashboard/shops/demo/members?q=byrne".to_string(),
        "/dashboard/shops/demo/members?q=%3Cscript%3E".to_string(),
    ] {
        let p = get(&d, &path, Some(ADMIN_TOKEN)).await;
        assert_eq!(p.status, 200, "{path}");
        assert!(!p.body.contains("<script>alert"), "{path} is not escaped");
        assert!(
            p.body
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{path}: {}",
            p.body
        );
    }

    // The overview: liability chart, webhook health, dead letters, strict headers.
    let r = browser()
        .get(d.url("/dashboard/shops/demo"))
        .header("Cookie", format!("loyaltyd_token={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"liability-chart\""), "{body}");
    assert!(body.contains("id=\"outstanding\">11<"), "{body}");
    assert!(body.contains("<td>shopify</td>"));
    assert!(body.contains("badge healthy"));
    assert!(body.contains("No dead letters."));
    for external in ["http://", "https://"] {
        assert!(!body.contains(external), "the page links to {external}");
    }
}

/// Where the browser test's tools are, or a failure naming how to install them.
fn browser_tools() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/dashboard");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "the dashboard browser test needs Chromium at {}: install it with \
         `apt-get install -y chromium` (or set CHROMIUM to its path)",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "the dashboard browser test needs Node.js 20+: install it with \
         `apt-get install -y nodejs npm`, then `(cd tests/dashboard && npm ci)`"
    );
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .exists(),
        "the dashboard browser test needs playwright-core: run \
         `(cd tests/dashboard && npm ci --no-audit --no-fund)`"
    );
    (dir, chromium)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_finds_a_member_redeems_and_sees_the_balance_change() {
    let (dir, chromium) = browser_tools();
    let setup = setup();
    let d = setup.start();
    let member = ada(&d).await;

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&target).unwrap();
    let shot = target.join("dashboard-member.png");
    let _ = std::fs::remove_file(&shot);

    let base = d.base.clone();
    let (script, shot_arg) = (dir.join("member.mjs"), shot.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&base)
            .arg(ADMIN_TOKEN)
            .arg(&shot_arg)
            .env("CHROMIUM", chromium)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("ok - the balance 6 after redeeming free-coffee"),
        "{stdout}"
    );

    // The redemption really happened, once, as the admin token.
    assert_eq!(available(&d, &member).await, 6);
    let png = std::fs::read(&shot).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "the screenshot is only {} bytes",
        png.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_and_retried_from_the_overview() {
    use fakeproviders::FakeTwilio;
    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const PHONE: &str = "+15145550142";
    let twilio = FakeTwilio::start(SID, "test-twilio-auth-token").await;
    let setup = setup();
    let path = setup.config_path();
    let notify = format!(
        "[notify]\nretry_base_ms = 100\nretry_cap_secs = 1\n\n[notify.sms]\nbase_url = \"{}\"\n\
         account_sid = \"{SID}\"\nauth_token = \"test-twilio-auth-token\"\nfrom = \"+15005550006\"\n\
         rate_per_sec = 200\n\n[[shops]]\nid = \"demo\"",
        twilio.base_url()
    );
    let text =
        std::fs::read_to_string(&path)
            .unwrap()
            .replacen("[[shops]]\nid = \"demo\"", &notify, 1);
    std::fs::write(&path, text).unwrap();
    let d = setup.start();
    let consent = String::from_utf8(fixture("customers-update.json"))
        .unwrap()
        .replace(
            "\"sms_marketing_consent\": {\"state\": \"not_subscribed\"",
            "\"sms_marketing_consent\": {\"state\": \"subscribed\"",
        );
    let (s, r) = post_shopify(
        &d,
        "demo",
        "customers/update",
        "wh-c",
        consent.as_bytes(),
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    twilio.unsubscribe(PHONE);
    ada(&d).await;
    let mut letter = serde_json::Value::Null;
    for _ in 0..200 {
        let (_, l) = admin_get(&d, "/v1/shops/demo/deadletters").await;
        if let Some(first) = l["dead_letters"].as_array().and_then(|a| a.first()) {
            letter = first.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let id = letter["message_id"].as_u64().expect("a dead letter");
    let retry = format!("/dashboard/shops/demo/deadletters/{id}/sms/retry");

    // Readers see the letter (code, no phone number) but no Retry button, and cannot retry.
    let p = get(&d, "/dashboard/shops/demo", Some(READER)).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("id=\"dead-letters\""), "{}", p.body);
    assert!(p.body.contains("code 21610"));
    assert!(!p.body.contains(PHONE));
    assert!(!p.body.contains(&retry));
    let p = post(
        &d,
        &retry,
        Some(READER),
        &[("csrf", &field(&p.body, "csrf"))],
    )
    .await;
    assert_eq!(p.status, 403);

    // A writer retries it once the member can receive texts again: it goes out.
    let member = letter["member_id"].as_str().unwrap();
    let (s, r) = admin_put(
        &d,
        &format!("/v1/shops/demo/members/{member}/consent"),
        serde_json::json!({"sms": true}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    twilio.resubscribe(PHONE);
    let p = get(&d, "/dashboard/shops/demo", Some(TILL)).await;
    assert!(p.body.contains(&retry), "{}", p.body);
    let csrf = field(&p.body, "csrf");
    let bad = post(&d, &retry, Some(TILL), &[("csrf", "nope")]).await;
    assert_eq!(bad.status, 403);
    let before = twilio.requests().len();
    let p = post(&d, &retry, Some(TILL), &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let back = p.location.unwrap();
    assert_eq!(back, format!("/dashboard/shops/demo?retried={id}/sms"));
    let got = twilio
        .wait_for(before + 1, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(got.last().map(|r| r.status), Some(201), "{got:#?}");
    let p = get(&d, &back, Some(TILL)).await;
    assert!(p
        .body
        .contains(&format!("Notification {id} (sms) is back in the outbox")));
    let p = post(&d, &retry, Some(TILL), &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 404, "a retried letter is gone");
}

//! The dashboard's pages (GET) and its login.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{chart, guard, render, session, DashError, Viewer};
use crate::config::ShopConfig;
use crate::http::AppState;
use crate::ledger::journal::{LotChange, Posting, PostingKind};
use crate::member::{normalise_email, normalise_phone, IdentityKind, Member, MemberId};

/// Members per page of search results.
const PAGE: usize = 50;
/// Postings shown on a member page.
const HISTORY: usize = 100;

// ---------------------------------------------------------------- login

#[derive(Serialize)]
struct LoginPage<'a> {
    next: &'a str,
    error: Option<&'a str>,
}

/// `GET /dashboard/login[?next=]`
pub async fn login_form(Query(q): Query<HashMap<String, String>>) -> Response {
    let next = session::safe_next(q.get("next").map(String::as_str));
    render(
        StatusCode::OK,
        "login.html",
        LoginPage {
            next: &next,
            error: None,
        },
    )
}

/// `POST /dashboard/login` (`token`, `next`): a valid token is kept in the cookie;
/// anything else shows the form again, with no cookie set.
pub async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fields: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let presented = fields.get("token").map(|t| t.trim()).unwrap_or("");
    let next = session::safe_next(fields.get("next").map(String::as_str));
    match crate::http::auth::find_token(&state.config.tokens, presented)
        .filter(|_| !presented.is_empty())
    {
        Some(token) => {
            tracing::info!(actor = %token.name, "dashboard login");
            (
                StatusCode::SEE_OTHER,
                [
                    (header::SET_COOKIE, session::set_cookie(presented, &headers)),
                    (
                        header::LOCATION,
                        next.parse()
                            .unwrap_or(header::HeaderValue::from_static("/dashboard")),
                    ),
                    (
                        header::CACHE_CONTROL,
                        header::HeaderValue::from_static("no-store"),
                    ),
                ],
            )
                .into_response()
        }
        None => {
            tracing::info!("dashboard login with an unknown token");
            render(
                StatusCode::UNAUTHORIZED,
                "login.html",
                LoginPage {
                    next: &next,
                    error: Some("That token is not valid."),
                },
            )
        }
    }
}

/// `POST /dashboard/logout` (`csrf`): forget the cookie.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(s) = session::session(&state.config.tokens, &headers) {
        if let Err(e) = super::form(&headers, &body, &s) {
            return e.into_response();
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::clear_cookie(&headers)),
            (
                header::LOCATION,
                header::HeaderValue::from_static("/dashboard/login"),
            ),
        ],
    )
        .into_response()
}

// ---------------------------------------------------------------- shop picker

#[derive(Serialize)]
struct ShopLink {
    id: String,
    name: String,
    currency: String,
}

#[derive(Serialize)]
struct ShopsPage<'a> {
    viewer: Viewer<'a>,
    shops: Vec<ShopLink>,
}

/// `GET /dashboard`: the shops the token may open.
pub async fn shops(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(s) = session::session(&state.config.tokens, &headers) else {
        return DashError::Login("/dashboard".into()).into_response();
    };
    let shops = state
        .config
        .shops
        .iter()
        .filter(|shop| s.token.allows(shop.id.as_str()))
        .map(|shop| ShopLink {
            id: shop.id.to_string(),
            name: shop.name.clone(),
            currency: shop.currency.as_str().to_string(),
        })
        .collect();
    render(
        StatusCode::OK,
        "shops.html",
        ShopsPage {
            viewer: s.viewer(),
            shops,
        },
    )
}

// ---------------------------------------------------------------- formatting

#[derive(Serialize)]
pub(super) struct ShopView {
    id: String,
    name: String,
    currency: String,
    timezone: String,
}

pub(super) fn shop_view(shop: &ShopConfig) -> ShopView {
    ShopView {
        id: shop.id.to_string(),
        name: shop.name.clone(),
        currency: shop.currency.as_str().to_string(),
        timezone: shop.timezone.name().to_string(),
    }
}

/// A time in the shop's zone.
fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

fn local_date(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d").to_string()
}

fn signed(v: i64) -> String {
    if v > 0 {
        format!("+{v}")
    } else {
        v.to_string()
    }
}

fn display_name(m: &Member) -> String {
    let name = [m.first_name.as_deref(), m.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        "(no name)".into()
    } else {
        name
    }
}

// ---------------------------------------------------------------- overview

#[derive(Serialize)]
struct AdapterHealth {
    name: String,
    status: &'static str,
    accepted: u64,
    ignored: u64,
    rejected: u64,
    last_accepted: Option<String>,
    last_rejected: Option<String>,
    last_rejected_outcome: Option<String>,
}

#[derive(Serialize)]
struct RecentDelivery {
    at: String,
    adapter: String,
    class: &'static str,
    outcome: String,
    status: u16,
    took_ms: String,
}

#[derive(Serialize)]
struct DeadLetterRow {
    message_id: u64,
    channel: &'static str,
    kind: &'static str,
    member_id: String,
    provider: String,
    status: Option<u16>,
    code: Option<String>,
    error: String,
    attempts: u32,
    dead_at: String,
}

#[derive(Serialize)]
struct OverviewPage<'a> {
    viewer: Viewer<'a>,
    shop: ShopView,
    chart: Option<chart::Chart>,
    outstanding: i64,
    liability: String,
    point_value: String,
    adapters: Vec<AdapterHealth>,
    deliveries: Vec<RecentDelivery>,
    dead_letters: Vec<DeadLetterRow>,
    flash: Option<String>,
}

/// The adapters a shop has configured.
fn configured_adapters(shop: &ShopConfig) -> Vec<String> {
    let mut names = Vec::new();
    if shop.shopify.is_some() {
        names.push("shopify".to_string());
    }
    if shop.square.is_some() {
        names.push("square".to_string());
    }
    names.extend(shop.declarative.iter().map(|d| d.adapter.clone()));
    names
}

/// `GET /dashboard/shops/{shop}[?retried=id/channel]`
pub async fn overview(
    State(state): State<Arc<AppState>>,
    Path(shop_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, DashError> {
    let (s, shop) = guard(&state, &headers, &method, &uri, &shop_id)?;
    let tz = shop.timezone;

    let (ledger, owned) = (state.ledger.clone(), shop.clone());
    let activity = tokio::task::spawn_blocking(move || {
        crate::report::activity::activity(&ledger, &owned, None, Utc::now())
    })
    .await
    .map_err(|e| DashError::storage(&e))?
    .map_err(|e| DashError::storage(&e))?;
    let series = chart::outstanding(&activity.days);
    let outstanding = series.last().map(|p| p.1).unwrap_or(0);
    let minor = shop.currency.minor_units().unwrap_or(2);

    // Webhook health per adapter, from the deliveries since the daemon started.
    let recent = state.webhook_log.recent(shop.id.as_str());
    let mut health: BTreeMap<String, AdapterHealth> = configured_adapters(shop)
        .into_iter()
        .map(|name| {
            (
                name.clone(),
                AdapterHealth {
                    name,
                    status: "no deliveries yet",
                    accepted: 0,
                    ignored: 0,
                    rejected: 0,
                    last_accepted: None,
                    last_rejected: None,
                    last_rejected_outcome: None,
                },
            )
        })
        .collect();
    for d in &recent {
        let h = health
            .entry(d.adapter.clone())
            .or_insert_with(|| AdapterHealth {
                name: d.adapter.clone(),
                status: "no deliveries yet",
                accepted: 0,
                ignored: 0,
                rejected: 0,
                last_accepted: None,
                last_rejected: None,
                last_rejected_outcome: None,
            });
        // Newest first: the first delivery seen decides the status.
        if h.accepted + h.ignored + h.rejected == 0 {
            h.status = if d.class == "rejected" {
                "failing"
            } else {
                "healthy"
            };
        }
        match d.class {
            "accepted" => {
                h.accepted += 1;
                h.last_accepted.get_or_insert_with(|| local(d.at, tz));
            }
            "ignored" => h.ignored += 1,
            _ => {
                h.rejected += 1;
                if h.last_rejected.is_none() {
                    h.last_rejected = Some(local(d.at, tz));
                    h.last_rejected_outcome = Some(format!("{} ({})", d.outcome, d.status));
                }
            }
        }
    }
    let deliveries = recent
        .iter()
        .take(20)
        .map(|d| RecentDelivery {
            at: local(d.at, tz),
            adapter: d.adapter.clone(),
            class: d.class,
            outcome: d.outcome.clone(),
            status: d.status,
            took_ms: format!("{:.1}", d.took_ms),
        })
        .collect();

    let dead_letters = state
        .delivery
        .dead_letters(&shop.id)
        .map_err(|e| DashError::storage(&e))?
        .into_iter()
        .map(|d| DeadLetterRow {
            message_id: d.message.id,
            channel: d.route.name(),
            kind: crate::notify::render::kind(&d.message).name(),
            member_id: d.message.member.to_string(),
            provider: d.provider,
            status: d.status,
            code: d.code,
            error: d.error,
            attempts: d.attempts,
            dead_at: local(d.at, tz),
        })
        .collect();

    let flash = q.get("retried").and_then(|r| {
        let (id, channel) = r.split_once('/')?;
        let id: u64 = id.parse().ok()?;
        let route = crate::notify::delivery::Route::parse(channel)?;
        Some(format!(
            "Notification {id} ({}) is back in the outbox and will be sent now.",
            route.name()
        ))
    });

    Ok(render(
        StatusCode::OK,
        "overview.html",
        OverviewPage {
            viewer: s.viewer(),
            shop: shop_view(shop),
            chart: chart::chart(&series),
            outstanding,
            liability: chart::money(outstanding, shop.point_value, minor),
            point_value: shop.point_value.to_string(),
            adapters: health.into_values().collect(),
            deliveries,
            dead_letters,
            flash,
        },
    ))
}

// ---------------------------------------------------------------- search

#[derive(Serialize)]
struct MemberRow {
    id: String,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    tier: Option<String>,
    available: i64,
    pending: i64,
    since: String,
}

#[derive(Serialize)]
struct MembersPage<'a> {
    viewer: Viewer<'a>,
    shop: ShopView,
    q: String,
    members: Vec<MemberRow>,
    next: Option<String>,
    searched: bool,
}

/// `GET /dashboard/shops/{shop}/members[?q=&after=]`: an exact e-mail or phone match
/// first, then every member whose name, e-mail, phone, POS id or member id contains `q`.
pub async fn members(
    State(state): State<Arc<AppState>>,
    Path(shop_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, DashError> {
    let (s, shop) = guard(&state, &headers, &method, &uri, &shop_id)?;
    let q = params
        .get("q")
        .map(|q| q.trim().to_string())
        .unwrap_or_default();
    let after = match params.get("after").filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(
            MemberId::parse(a)
                .ok_or_else(|| DashError::BadRequest("That page cursor is not valid.".into()))?,
        ),
    };
    let mut found: Vec<Member> = Vec::new();
    if !q.is_empty() && after.is_none() {
        let exact = [
            normalise_email(&q).map(|e| (IdentityKind::Email, e)),
            normalise_phone(&q, shop.country).map(|p| (IdentityKind::Phone, p)),
        ];
        for (kind, value) in exact.into_iter().flatten() {
            if let Some(m) = state
                .ledger
                .member_by_identity(&shop.id, kind, &value)
                .map_err(|e| DashError::storage(&e))?
            {
                if !found.iter().any(|f| f.id == m.id) {
                    found.push(m);
                }
            }
        }
    }
    let (ledger, id, query) = (
        state.ledger.clone(),
        shop.id.clone(),
        Some(q.clone()).filter(|q| !q.is_empty()),
    );
    let page = tokio::task::spawn_blocking(move || {
        ledger.list_members(&id, after.as_ref(), PAGE, query.as_deref())
    })
    .await
    .map_err(|e| DashError::storage(&e))?
    .map_err(|e| DashError::storage(&e))?;
    for m in page.members {
        if !found.iter().any(|f| f.id == m.id) {
            found.push(m);
        }
    }
    let mut members = Vec::with_capacity(found.len());
    for m in &found {
        let b = state
            .ledger
            .balances(&shop.id, m)
            .map_err(|e| DashError::storage(&e))?;
        members.push(MemberRow {
            id: m.id.to_string(),
            name: display_name(m),
            email: m.email.clone(),
            phone: m.phone.clone(),
            tier: m.tier.clone(),
            available: b.available.0,
            pending: b.pending.0,
            since: local_date(m.created_at, shop.timezone),
        });
    }
    Ok(render(
        StatusCode::OK,
        "members.html",
        MembersPage {
            viewer: s.viewer(),
            shop: shop_view(shop),
            searched: !q.is_empty(),
            q,
            members,
            next: page.next.map(|n| n.to_string()),
        },
    ))
}

// ---------------------------------------------------------------- member

#[derive(Serialize)]
struct LotRow {
    lot: u64,
    earned: String,
    points: i64,
    original: i64,
    pending_until: Option<String>,
    expires: Option<String>,
}

#[derive(Serialize)]
struct HistoryRow {
    posting_id: u64,
    when: String,
    kind: &'static str,
    points: String,
    direction: &'static str,
    available_delta: i64,
    pending_delta: i64,
    /// Why, line by line.
    explanation: Vec<String>,
}

#[derive(Serialize)]
struct RewardOption {
    id: String,
    name: String,
    points: i64,
    affordable: bool,
}

#[derive(Serialize)]
struct MemberView {
    id: String,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    tier: Option<String>,
    tags: Vec<String>,
    birthday: Option<String>,
    consent_email: &'static str,
    consent_sms: &'static str,
    store_credit: String,
    available: i64,
    pending: i64,
    lifetime: i64,
    identities: Vec<String>,
    created: String,
    last_activity: Option<String>,
}

#[derive(Serialize)]
struct MemberPage<'a> {
    viewer: Viewer<'a>,
    shop: ShopView,
    member: MemberView,
    lots: Vec<LotRow>,
    history: Vec<HistoryRow>,
    rewards: Vec<RewardOption>,
    redeem_key: String,
    adjust_key: String,
    flash: Option<String>,
    error: Option<String>,
}

fn consent(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not stated",
    }
}

fn kind_label(k: PostingKind) -> &'static str {
    match k {
        PostingKind::Earn => "Earned",
        PostingKind::Mature => "Became available",
        PostingKind::Redeem => "Redeemed",
        PostingKind::RedemptionReturn => "Redemption returned",
        PostingKind::Adjust => "Adjusted",
        PostingKind::Reverse => "Reversed",
        PostingKind::Expire => "Expired",
        PostingKind::TierChange => "Tier change",
        PostingKind::Bonus => "Bonus",
        PostingKind::Imported => "Imported",
        PostingKind::Merge => "Merged",
    }
}

/// Why a posting happened, in words.
fn explain(p: &Posting, shop: &ShopConfig) -> Vec<String> {
    let tz = shop.timezone;
    let rules = shop.rules.current();
    let mut out = Vec::new();
    match p.kind {
        PostingKind::Earn | PostingKind::Bonus => {
            for c in &p.explanation {
                out.push(format!(
                    "{}: {} points \u{2014} {}",
                    c.rule_id,
                    signed(c.points.0),
                    c.detail
                ));
            }
        }
        PostingKind::Redeem => {
            if let Some(r) = &p.reward {
                let name = rules
                    .reward(r)
                    .map(|rw| format!("{} ({r})", rw.name))
                    .unwrap_or_else(|| r.clone());
                out.push(format!("Reward: {name}"));
            }
        }
        PostingKind::RedemptionReturn => {
            out.push("The order these points paid for was refunded or cancelled.".into())
        }
        PostingKind::Mature => out.push("The returns window ended.".into()),
        PostingKind::Expire => {
            for l in &p.lots {
                if let LotChange::Take { lot, amount } = l {
                    out.push(format!("{amount} points of lot #{lot} lapsed"));
                }
            }
        }
        _ => {}
    }
    if let Some(o) = &p.order_id {
        out.push(format!("Order {o}"));
    }
    if let Some(r) = &p.reason {
        out.push(format!("Reason: {r}"));
    }
    if p.shortfall.0 != 0 {
        out.push(format!(
            "{} points could not be taken back (already spent)",
            p.shortfall
        ));
    }
    if !p.cash_back.is_zero() {
        out.push(format!(
            "Store credit: {} {}",
            p.cash_back,
            shop.currency.as_str()
        ));
    }
    if let Some(a) = &p.actor {
        out.push(format!("By {a}"));
    }
    if p.recorded_at
        .signed_duration_since(p.occurred_at)
        .num_minutes()
        > 5
    {
        out.push(format!("Happened {}", local(p.occurred_at, tz)));
    }
    if let Some(v) = &p.rules_version {
        out.push(format!(
            "Rules version {}",
            v.chars().take(12).collect::<String>()
        ));
    }
    out
}

/// Shown above a member page: the outcome of the form just submitted (only the forms'
/// fixed messages and numbers from the ledger, never text from the URL).
pub(super) enum Notice {
    None,
    /// The posting a form made (the redirect's `?done=N`).
    Done(u64),
    /// A form that was refused, and why.
    Error(String),
}

pub(super) fn load_member(
    state: &AppState,
    shop: &ShopConfig,
    id: &str,
) -> Result<Member, DashError> {
    let not_found = || DashError::NotFound("No such member.".into());
    let id = MemberId::parse(id).ok_or_else(not_found)?;
    state
        .ledger
        .member(&shop.id, &id)
        .map_err(|e| DashError::storage(&e))?
        .ok_or_else(not_found)
}

/// Build and render a member page.
pub(super) fn member_page(
    state: &AppState,
    s: &session::Session,
    shop: &ShopConfig,
    m: &Member,
    notice: Notice,
    status: StatusCode,
) -> Result<Response, DashError> {
    let tz = shop.timezone;
    let b = state
        .ledger
        .balances(&shop.id, m)
        .map_err(|e| DashError::storage(&e))?;
    let lots = state
        .ledger
        .member_lots(&shop.id, &m.id)
        .map_err(|e| DashError::storage(&e))?
        .lots
        .iter()
        .map(|l| LotRow {
            lot: l.id,
            earned: local(l.earned_at, tz),
            points: l.remaining.0,
            original: l.original.0,
            pending_until: l.pending_until.map(|t| local(t, tz)),
            expires: l.expires_at.map(|t| local(t, tz)),
        })
        .collect();
    let postings = state
        .ledger
        .member_postings(&shop.id, &m.id, HISTORY)
        .map_err(|e| DashError::storage(&e))?;
    let (mut flash, mut error) = (None, None);
    match notice {
        Notice::None => {}
        Notice::Error(e) => error = Some(e),
        Notice::Done(seq) => {
            if let Some(p) = postings.iter().find(|p| p.seq == seq) {
                let moved = p.member_available_delta().0 + p.member_pending_delta().0;
                let what = match p.kind {
                    PostingKind::Redeem => format!(
                        "Redeemed {} points{}",
                        -moved,
                        p.reward
                            .as_ref()
                            .and_then(|r| shop.rules.current().reward(r).map(|rw| rw.name.clone()))
                            .map(|n| format!(" for {n}"))
                            .unwrap_or_default()
                    ),
                    _ => format!("Adjusted by {} points", signed(moved)),
                };
                flash = Some(format!(
                    "{what} (posting #{seq}). Balance now {} available.",
                    b.available
                ));
            }
        }
    }
    let history = postings
        .iter()
        .map(|p| {
            let moved = p.member_available_delta().0 + p.member_pending_delta().0;
            HistoryRow {
                posting_id: p.seq,
                when: local(p.recorded_at, tz),
                kind: kind_label(p.kind),
                points: signed(moved),
                direction: match moved.signum() {
                    1 => "up",
                    -1 => "down",
                    _ => "flat",
                },
                available_delta: p.member_available_delta().0,
                pending_delta: p.member_pending_delta().0,
                explanation: explain(p, shop),
            }
        })
        .collect();
    let rewards = shop
        .rules
        .current()
        .rewards
        .iter()
        .map(|r| RewardOption {
            id: r.id.clone(),
            name: r.name.clone(),
            points: r.points,
            affordable: r.points <= b.available.0,
        })
        .collect();
    let member = MemberView {
        id: m.id.to_string(),
        name: display_name(m),
        email: m.email.clone(),
        phone: m.phone.clone(),
        tier: m.tier.clone(),
        tags: m.tags.clone(),
        birthday: m.birthday.map(|d| d.to_string()),
        consent_email: consent(m.consent.email),
        consent_sms: consent(m.consent.sms),
        store_credit: format!("{} {}", m.store_credit, shop.currency.as_str()),
        available: b.available.0,
        pending: b.pending.0,
        lifetime: b.lifetime.0,
        identities: m
            .identities
            .iter()
            .map(|i| format!("{}: {}", i.kind.as_str(), i.value))
            .collect(),
        created: local(m.created_at, tz),
        last_activity: m.last_activity_at.map(|t| local(t, tz)),
    };
    Ok(render(
        status,
        "member.html",
        MemberPage {
            viewer: s.viewer(),
            shop: shop_view(shop),
            member,
            lots,
            history,
            rewards,
            // A fresh key per render: submitting this form twice posts once.
            redeem_key: format!("dashboard-{}", uuid::Uuid::new_v4().simple()),
            adjust_key: format!("dashboard-{}", uuid::Uuid::new_v4().simple()),
            flash,
            error,
        },
    ))
}

/// `GET /dashboard/shops/{shop}/members/{id}[?done=N]`
pub async fn member(
    State(state): State<Arc<AppState>>,
    Path((shop_id, member_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, DashError> {
    let (s, shop) = guard(&state, &headers, &method, &uri, &shop_id)?;
    let m = load_member(&state, shop, &member_id)?;
    let notice = match q.get("done").and_then(|d| d.parse().ok()) {
        Some(seq) => Notice::Done(seq),
        None => Notice::None,
    };
    member_page(&state, &s, shop, &m, notice, StatusCode::OK)
}

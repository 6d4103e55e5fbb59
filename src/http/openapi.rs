//! The OpenAPI 3.1 document of the admin API, generated from the handlers'
//! `#[utoipa::path]` attributes and the response types' `ToSchema` derives, served
//! without a token at `GET /v1/openapi.json`.
//!
//! To document a new `/v1` endpoint: put a `#[utoipa::path(...)]` on its handler (method,
//! `path = "/v1/..."`, `tag`, `security(("bearer" = []))`, `params`, `request_body`,
//! and every response status with its body — `ErrorBody` for errors, with the error
//! codes in backticks in the description), derive `ToSchema` on its request and
//! response types, and add the handler to `paths(...)` of [`ApiDoc`] below.
//! `tests/openapi_e2e.rs` fails while a route of the router is missing here.
//!
//! The types below describe JSON produced by types outside the HTTP layer (ledger,
//! rules, adapter SDK), which do not depend on utoipa; each names the type it mirrors,
//! and the end-to-end test validates live answers against them.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{
    admin, backup, deliveries, notifications, operator, referrals, reports, simulate, spend,
};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "loyaltyd admin API",
        description = "Members, points, reports, simulation and notifications of a loyaltyd \
                       daemon. Every request needs `Authorization: Bearer <token>` (a \
                       `[[tokens]]` entry, or `server.admin_token`); tokens have a role \
                       (`read` < `write` < `admin`) and may be limited to shops. Every error \
                       is `{\"error\": {\"code\", \"message\"}}`: 400 for a request of the \
                       wrong shape (`malformed_json`, `invalid_body`, `invalid_path`, \
                       `invalid_query`, field checks), 401 `unauthorized`, 403 \
                       `forbidden_shop`/`forbidden_role`, 404 `not_found`/`unknown_*`, 405 \
                       `method_not_allowed`, 409 conflicts, 413 `body_too_large`, 415 \
                       `unsupported_media_type` (JSON bodies need `Content-Type: \
                       application/json`), 422 refusals by the program (`insufficient_points`, \
                       `unknown_reward`, `currency_mismatch`), 503 `storage_unavailable`.",
    ),
    servers((url = "/", description = "this daemon")),
    paths(
        serve,
        admin::lookup,
        admin::member,
        admin::ledger,
        spend::redeem,
        spend::adjust,
        referrals::refer,
        notifications::set_consent,
        notifications::dead_letters,
        notifications::retry,
        reports::liability,
        simulate::simulate,
        operator::list_members,
        operator::merge,
        operator::update_profile,
        operator::activity,
        operator::program,
        deliveries::list,
        backup::backup,
    ),
    components(schemas(super::error::ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "members", description = "Members, their balances and ledgers"),
        (name = "points", description = "Redemptions and adjustments"),
        (name = "notifications", description = "Consent and dead letters"),
        (name = "reports", description = "Reports"),
        (name = "rules", description = "Scoring without posting"),
        (name = "operations", description = "Webhook deliveries and backups"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme the operations name in their `security`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token from the config's `[[tokens]]` (or `server.admin_token`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_vec_pretty(&ApiDoc::openapi()).expect("the OpenAPI document serialises")
    })
}

/// This document (OpenAPI 3.1, JSON). No token needed.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object),
    )
)]
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// Marketing consent per channel (`null`: never stated). Mirrors
/// `loyaltyd_adapter::Consent`.
#[derive(Serialize, ToSchema)]
#[schema(as = Consent)]
pub struct ConsentDoc {
    /// May we e-mail?
    pub email: Option<bool>,
    /// May we text?
    pub sms: Option<bool>,
}

/// The kinds of identity that find a member. Mirrors `member::IdentityKind`.
#[derive(Serialize, ToSchema)]
#[schema(as = IdentityKind)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKindDoc {
    /// A Shopify customer id.
    ShopifyCustomerId,
    /// A Square customer id.
    SquareCustomerId,
    /// A lower-cased e-mail address.
    Email,
    /// An E.164 phone number.
    Phone,
}

/// An identity linked to a member. Mirrors `member::LinkedIdentity`.
#[derive(Serialize, ToSchema)]
#[schema(as = Identity)]
pub struct IdentityDoc {
    /// What kind.
    pub kind: IdentityKindDoc,
    /// Its normalised value.
    pub value: String,
    /// The adapter whose event brought it (`shopify`, `square`, …).
    pub source: Option<String>,
    /// When it was linked.
    pub linked_at: Option<DateTime<Utc>>,
}

/// Why a posting was made. Mirrors `ledger::journal::PostingKind`.
#[derive(Serialize, ToSchema)]
#[schema(as = PostingKind)]
#[serde(rename_all = "snake_case")]
pub enum PostingKindDoc {
    /// Points earned from a sale.
    Earn,
    /// Pending points became available.
    Mature,
    /// Points spent on a reward.
    Redeem,
    /// Redeemed points given back after a refund.
    RedemptionReturn,
    /// A manual correction by staff.
    Adjust,
    /// Points taken back by a refund or cancellation.
    Reverse,
    /// Points that lapsed.
    Expire,
    /// The member moved to another tier.
    TierChange,
    /// Points given for an event other than a sale.
    Bonus,
    /// A balance brought in by `loyaltyd import`.
    Imported,
    /// Points moved by a member merge.
    Merge,
}

/// How a posting changed the member's lots. Mirrors `ledger::journal::LotChange`.
#[derive(Serialize, ToSchema)]
#[schema(as = LotChange)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LotChangeDoc {
    /// A new lot.
    Open {
        /// Lot id.
        lot: u64,
        /// Points in it.
        amount: i64,
        /// Held as pending until then.
        pending_until: Option<DateTime<Utc>>,
        /// Lapses then.
        expires_at: Option<DateTime<Utc>>,
        /// The local day it was earned.
        day: Option<NaiveDate>,
    },
    /// Points added to a lot of the same day.
    TopUp {
        /// Lot id.
        lot: u64,
        /// Points added.
        amount: i64,
    },
    /// Points taken out of a lot.
    Take {
        /// Lot id.
        lot: u64,
        /// Points taken.
        amount: i64,
    },
    /// A pending lot became available.
    Mature {
        /// Lot id.
        lot: u64,
    },
}

/// A journal account. Mirrors `ledger::journal::Account`.
#[derive(Serialize, ToSchema)]
#[schema(as = Account)]
#[serde(rename_all = "snake_case")]
pub enum AccountDoc {
    /// The member's available points (`member` names the member).
    MemberAvailable,
    /// The member's pending points (`member` names the member).
    MemberPending,
    /// Points the program issued.
    Issued,
    /// Points members spent.
    Redeemed,
    /// Points that lapsed.
    Expired,
    /// Manual corrections.
    Adjusted,
    /// Points taken back by refunds.
    Reversed,
}

/// One leg of a posting. Mirrors `ledger::journal::Entry`.
#[derive(Serialize, ToSchema)]
#[schema(as = JournalEntry)]
pub struct EntryDoc {
    /// Which account.
    pub account: AccountDoc,
    /// The member, for member accounts (absent for program accounts).
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Signed amount; a posting's entries sum to zero.
    pub amount: i64,
}

/// One rule's part in an award. Mirrors `rules::Contribution`.
#[derive(Serialize, ToSchema)]
#[schema(as = Contribution)]
pub struct ContributionDoc {
    /// The rule's id (`earn.base` for the base rate).
    pub rule_id: String,
    /// Points it contributed (negative for a cap).
    pub points: i64,
    /// The arithmetic, in words.
    pub detail: String,
}

/// The eligible spend of one sale line. Mirrors `rules::LineEligible`.
#[derive(Serialize, ToSchema)]
#[schema(as = LineEligible)]
pub struct LineEligibleDoc {
    /// The sender's line id.
    pub line_id: String,
    /// Its eligible spend (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub eligible: String,
}

/// One earning cohort. Mirrors `report::liability::Cohort`.
#[derive(Serialize, ToSchema)]
#[schema(as = Cohort)]
pub struct CohortDoc {
    /// `YYYY-MM` in the shop's time zone.
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub month: String,
    /// Points put into lots that month.
    pub issued: i64,
    /// Taken by redemptions.
    pub redeemed: i64,
    /// Lapsed.
    pub expired: i64,
    /// Taken back by refunds.
    pub reversed: i64,
    /// Removed by manual debits.
    pub adjusted: i64,
    /// Still open.
    pub open: i64,
    /// expired ÷ issued (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub breakage_rate: String,
}

/// The points liability over a period. Mirrors `report::liability::LiabilityReport`.
/// `closing = opening + issued − redeemed − expired − reversed + adjusted`.
#[derive(Serialize, ToSchema)]
#[schema(as = LiabilityReport)]
pub struct LiabilityReportDoc {
    /// Shop.
    pub shop: String,
    /// Shop currency (ISO 4217).
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Period start (inclusive); `null`: from the beginning.
    pub from: Option<DateTime<Utc>>,
    /// Period end (exclusive).
    pub to: DateTime<Utc>,
    /// Outstanding points at `from`.
    pub opening_points: i64,
    /// Points earned in the period.
    pub issued: i64,
    /// Points redeemed, net of returned redemptions.
    pub redeemed: i64,
    /// Points expired.
    pub expired: i64,
    /// Points reversed by refunds and cancellations.
    pub reversed: i64,
    /// Net manual adjustments.
    pub adjusted: i64,
    /// Outstanding points at `to`.
    pub closing_points: i64,
    /// Money per point (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub point_value: String,
    /// `closing_points × point_value` in the shop currency (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub closing_liability: String,
    /// Share of all points put into lots that expired (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub breakage_rate: String,
    /// Breakage by month earned.
    pub cohorts: Vec<CohortDoc>,
    /// Open available points by time left before they expire at `to`.
    pub ageing: BTreeMap<String, i64>,
    /// Points still pending at `to`.
    pub pending_points: i64,
}

/// A customer as a sale names them. Mirrors `loyaltyd_adapter::CustomerRef`.
#[derive(Serialize, ToSchema)]
#[schema(as = CustomerRef)]
pub struct CustomerRefDoc {
    /// The sender's customer id.
    pub external_id: Option<String>,
    /// E-mail as sent.
    pub email: Option<String>,
    /// Whether the sender vouches for the e-mail.
    pub email_verified: Option<bool>,
    /// Phone as sent.
    pub phone: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
}

/// One line of a sale. Mirrors `loyaltyd_adapter::SaleLine`.
#[derive(Serialize, ToSchema)]
#[schema(as = SaleLine)]
pub struct SaleLineDoc {
    /// The sender's line id.
    pub line_id: String,
    /// Stock keeping unit.
    pub sku: Option<String>,
    /// The sender's product id.
    pub product_id: Option<String>,
    /// The sender's variant id.
    pub variant_id: Option<String>,
    /// Product title.
    pub title: String,
    /// Vendor / brand.
    pub vendor: Option<String>,
    /// Quantity (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub quantity: String,
    /// Price of one unit before discounts (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub unit_price: String,
    /// Discounts allocated to the line (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub discount: String,
    /// Tax on the line (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub tax: String,
    /// Product type, for `product_types` rules.
    pub product_type: Option<String>,
    /// Collections / categories, for `collections` rules.
    #[schema(required = false)]
    pub categories: Vec<String>,
    /// The line sells a gift card.
    pub gift_card: bool,
}

/// A canonical sale, as adapters produce it. Mirrors `loyaltyd_adapter::Sale`.
#[derive(Serialize, ToSchema)]
#[schema(as = Sale)]
pub struct SaleDoc {
    /// The sender's order id.
    pub order_id: String,
    /// The sender's separate order object, if any.
    pub source_order_id: Option<String>,
    /// Who bought (`null`: a guest).
    pub customer: Option<CustomerRefDoc>,
    /// ISO 4217 currency of every amount.
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: String,
    /// What was bought.
    pub lines: Vec<SaleLineDoc>,
    /// Shipping charged (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub shipping: String,
    /// Tax charged (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub tax: String,
    /// Whether line prices include tax.
    pub taxes_included: bool,
    /// What the customer paid (decimal string).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub total: String,
    /// Store / location id.
    pub location_id: Option<String>,
    /// Sales channel (`web`, `pos`, …).
    pub channel: Option<String>,
}

/// A member in a list. Mirrors the items of `GET …/members` (`operator.rs`).
#[derive(Serialize, ToSchema)]
#[schema(as = MemberSummary)]
pub struct MemberSummaryDoc {
    /// Member id.
    #[schema(pattern = "^m_[0-9a-f]{20}$")]
    pub id: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// E.164 phone number.
    pub phone: Option<String>,
    /// Tier name.
    pub tier: Option<String>,
    /// Balances.
    pub points: BalanceDoc,
    /// When the member was first seen.
    pub created_at: DateTime<Utc>,
}

/// Available and pending points.
#[derive(Serialize, ToSchema)]
#[schema(as = Balance)]
pub struct BalanceDoc {
    /// Points the member can spend now.
    pub available: i64,
    /// Points held until the returns window ends.
    pub pending: i64,
}

/// A page of members. Mirrors `GET …/members` (`operator.rs`).
#[derive(Serialize, ToSchema)]
#[schema(as = MemberPage)]
pub struct MemberPageDoc {
    /// Members in id order.
    pub members: Vec<MemberSummaryDoc>,
    /// Give this as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// Body of `PATCH …/profile`: either or both fields. Mirrors `operator.rs`'s
/// `ProfileBody`.
#[derive(Serialize, ToSchema)]
#[schema(as = ProfileChange, example = json!({"birthday": "1990-03-12", "tags": ["card"]}))]
#[serde(deny_unknown_fields)]
pub struct ProfileChangeDoc {
    /// `YYYY-MM-DD`, or `null` to clear.
    #[schema(required = false)]
    pub birthday: Option<NaiveDate>,
    /// Replaces the tags (trimmed, lower-cased).
    #[schema(required = false)]
    pub tags: Option<Vec<String>>,
}

/// A member's profile after a change. Mirrors `PATCH …/profile` (`operator.rs`).
#[derive(Serialize, ToSchema)]
#[schema(as = Profile)]
pub struct ProfileDoc {
    /// The member.
    pub member_id: String,
    /// Birthday.
    pub birthday: Option<NaiveDate>,
    /// Tags.
    pub tags: Vec<String>,
}

/// A reward. Mirrors `rules::Reward`.
#[derive(Serialize, ToSchema)]
#[schema(as = Reward)]
pub struct RewardDoc {
    /// Id used by the redemption API.
    pub id: String,
    /// Name shown to staff and members.
    pub name: String,
    /// Points it costs.
    pub points: i64,
    /// `item`, `amount_off`, `percent_off` or `free_shipping`.
    pub kind: String,
    /// Amount or percentage (decimal string) for `amount_off` / `percent_off`.
    pub value: Option<String>,
}

/// A tier level. Mirrors `rules::tiers::TierLevel`.
#[derive(Serialize, ToSchema)]
#[schema(as = TierLevel)]
pub struct TierLevelDoc {
    /// Name.
    pub name: String,
    /// Points or spend needed in the window (decimal string).
    pub threshold: String,
}

/// A tier program. Mirrors `rules::tiers::TierProgram`.
#[derive(Serialize, ToSchema)]
#[schema(as = TierProgram)]
pub struct TierProgramDoc {
    /// `points` or `spend`.
    pub basis: String,
    /// `rolling_12_months` or `calendar_year`.
    pub window: String,
    /// `old_tier` or `new_tier`.
    pub crossing_sale: String,
    /// Levels, lowest threshold first.
    pub levels: Vec<TierLevelDoc>,
}

/// The program in force.
#[derive(Serialize, ToSchema)]
#[schema(as = Program)]
pub struct ProgramDoc {
    /// Version (hash) of the rules file.
    pub rules_version: String,
    /// The rewards catalogue.
    pub rewards: Vec<RewardDoc>,
    /// Tiers, if the shop has them.
    pub tiers: Option<TierProgramDoc>,
}

/// One local day's movements. Mirrors `report::activity::Day`.
#[derive(Serialize, ToSchema)]
#[schema(as = ActivityDay)]
pub struct ActivityDayDoc {
    /// The day in the shop's time zone.
    pub date: NaiveDate,
    /// Points issued.
    pub issued: i64,
    /// Points redeemed.
    pub redeemed: i64,
    /// Points expired.
    pub expired: i64,
    /// Points reversed by refunds.
    pub reversed: i64,
    /// Net points adjusted by staff.
    pub adjusted: i64,
    /// Postings that day.
    pub postings: u64,
}

/// A rule's share of the points issued. Mirrors `report::activity::RuleTotal`.
#[derive(Serialize, ToSchema)]
#[schema(as = RuleTotal)]
pub struct RuleTotalDoc {
    /// Rule id.
    pub rule_id: String,
    /// Points it contributed.
    pub points: i64,
    /// Earnings it contributed to.
    pub sales: u64,
}

/// Program activity over a period. Mirrors `report::activity::Activity`.
#[derive(Serialize, ToSchema)]
#[schema(as = Activity)]
pub struct ActivityDoc {
    /// Days with postings, oldest first.
    pub days: Vec<ActivityDayDoc>,
    /// Rules by points issued, most first.
    pub top_rules: Vec<RuleTotalDoc>,
}

/// Accepted, ignored or rejected.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryClass)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryClassDoc {
    /// Applied or duplicate.
    Accepted,
    /// Recorded as ignored.
    Ignored,
    /// Answered with an error.
    Rejected,
}

/// One webhook request. Mirrors `http::deliveries::Delivery`.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryDoc {
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// Adapter (`shopify`, `square`, `twilio`, …).
    pub adapter: String,
    /// Accepted, ignored or rejected.
    pub class: DeliveryClassDoc,
    /// The precise outcome (`applied`, `duplicate`, `invalid_signature`, …).
    pub outcome: String,
    /// HTTP status answered.
    pub status: u16,
    /// Milliseconds to answer.
    pub took_ms: f64,
}

/// Counts per adapter.
#[derive(Serialize, ToSchema)]
#[schema(as = AdapterDeliveries)]
pub struct AdapterSummaryDoc {
    /// Accepted deliveries.
    pub accepted: u64,
    /// Ignored deliveries.
    pub ignored: u64,
    /// Rejected deliveries.
    pub rejected: u64,
    /// The last accepted one.
    pub last_accepted_at: Option<DateTime<Utc>>,
    /// The last rejected one.
    pub last_rejected_at: Option<DateTime<Utc>>,
}

/// Recent webhook deliveries. Mirrors `GET …/webhooks/deliveries` (`deliveries.rs`).
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDeliveries)]
pub struct DeliveriesDoc {
    /// Per adapter, since the daemon started.
    pub adapters: BTreeMap<String, AdapterSummaryDoc>,
    /// Deliveries, newest first.
    pub deliveries: Vec<DeliveryDoc>,
}

/// Body of `POST …/members/merge`. Mirrors `operator.rs`'s `MergeBody`.
#[derive(Serialize, ToSchema)]
#[schema(as = MergeRequest, example = json!({"into": "m_0123456789abcdef0123", "from": "m_00000000000000000001", "reason": "same person"}))]
#[serde(deny_unknown_fields)]
pub struct MergeBodyDoc {
    /// The member that stays.
    pub into: String,
    /// The member merged into it.
    pub from: String,
    /// Why (journaled; not blank).
    pub reason: String,
}

/// The result of a merge. Mirrors `POST …/members/merge` (`operator.rs`).
#[derive(Serialize, ToSchema)]
#[schema(as = MergeResult)]
pub struct MergedDoc {
    /// The surviving member.
    pub member_id: String,
    /// The member merged into it.
    pub merged: String,
    /// Points moved.
    pub moved: BalanceDoc,
    /// The merge postings (none when there were no points).
    pub posting_ids: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_the_bearer_scheme_and_every_operation_has_security() {
        let doc: serde_json::Value = serde_json::from_slice(document()).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 11, "{paths:?}");
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                assert!(op["security"].is_array(), "{method} {path} has no security");
                assert!(op["responses"].is_object(), "{method} {path}");
            }
        }
    }
}

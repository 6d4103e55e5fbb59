//! The path of a webhook, top to bottom:
//! verify → parse → dedupe → score → post → durable → (ack by the caller).
//!
//! Each step is a call into its own module; nothing here touches HTTP.

use chrono::{DateTime, Utc};
use loyaltyd_adapter::{
    Adapter, EnrichError, EventEnvelope, ParseError, Parsed, PosEvent, RawRequest, VerifyError,
};

use crate::breaker::{max_backoff, ApiBreakers};
use crate::config::ShopConfig;
use crate::ledger::customer::CustomerCommand;
use crate::ledger::earn::EarnCommand;
use crate::ledger::reverse::{ReversalCommand, ReversalKind};
use crate::ledger::{Applied, Ledger, LedgerError};
use crate::member::{redact, IdentityClaims};
use crate::notify::outbox::RequestScope;
use crate::notify::worker::Wakeup;
use crate::rules;

/// Why a webhook was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Bad or missing signature: nothing was parsed or stored.
    #[error(transparent)]
    Signature(#[from] VerifyError),
    /// Signed, but not a request we can read.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Storage failed; nothing was acknowledged.
    #[error(transparent)]
    Storage(#[from] LedgerError),
}

/// What became of a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded (or recognised as a duplicate); durable when returned.
    Done(Applied),
    /// Accepted and kept durably, but waiting for data from the sender's API (e.g. a
    /// Square order's line items); it is retried until it can be scored.
    Queued {
        /// Why it is waiting.
        reason: String,
    },
}

/// What every webhook goes through, shared by all requests.
#[derive(Clone, Copy)]
pub struct Pipeline<'a> {
    /// The ledger.
    pub ledger: &'a Ledger,
    /// Wakes the notifier after a commit.
    pub wakeup: &'a Wakeup,
    /// The sender APIs' circuit breakers (shared with the retry worker).
    pub breakers: &'a ApiBreakers,
    /// `storage.durable_acks`: answer only once the effect is on disk.
    pub durable_acks: bool,
}

/// Run one raw webhook through the pipeline. Returns only once its effect is durable.
pub async fn ingest(
    p: Pipeline<'_>,
    shop: &ShopConfig,
    adapter: &dyn Adapter,
    req: &RawRequest,
    now: DateTime<Utc>,
) -> Result<Outcome, IngestError> {
    let ledger = p.ledger;
    let result = ingest_inner(p, shop, adapter, req, now).await;
    if let Err(IngestError::Storage(LedgerError::Storage(_))) = &result {
        // sled refused the write itself. If a log write failed, that error is sled's
        // for good and a flush returns it too: the flush makes the group commit record
        // the failure (so /readyz reports it) before this webhook gets its 503.
        let _ = ledger.durable().await;
    }
    result
}

async fn ingest_inner(
    p: Pipeline<'_>,
    shop: &ShopConfig,
    adapter: &dyn Adapter,
    req: &RawRequest,
    now: DateTime<Utc>,
) -> Result<Outcome, IngestError> {
    let Pipeline {
        ledger,
        wakeup,
        breakers,
        durable_acks,
    } = p;
    adapter.verify(req)?;
    let parsed = adapter.parse(req)?;
    let outcome = match parsed {
        Parsed::Ignored {
            event_id,
            kind,
            reason,
        } => Outcome::Done(ledger.record_ignored(
            &shop.id,
            adapter.name(),
            &event_id,
            &kind,
            &reason,
            now,
        )?),
        Parsed::Event(envelope) => {
            if let Some(earlier) = ledger.delivery(&shop.id, adapter.name(), &envelope.event_id)? {
                Outcome::Done(Applied::Duplicate(earlier))
            } else if let Some(waiting) =
                ledger.queued(&shop.id, adapter.name(), &envelope.event_id)?
            {
                Outcome::Queued {
                    reason: waiting.last_error,
                }
            } else if adapter.needs_enrichment(&envelope)
                && breakers.is_open(&shop.id, adapter.name(), now)
            {
                // The API failed moments ago: queue at once rather than make the sender
                // wait for its timeout. The retry worker probes it.
                let name = adapter.name();
                let reason = format!("{name} API failing; queued without calling it");
                ledger.enqueue(&shop.id, name, &envelope, &reason, now)?;
                Outcome::Queued { reason }
            } else if adapter.needs_enrichment(&envelope) {
                let name = adapter.name();
                match adapter.enrich((*envelope).clone()).await {
                    Ok(complete) => {
                        breakers.close(&shop.id, name);
                        Outcome::Done(with_request(req, || {
                            apply_event(ledger, shop, name, &complete, now)
                        })?)
                    }
                    Err(EnrichError::Retryable(reason)) => {
                        let cap = max_backoff(shop, name);
                        let pause = breakers.trip(&shop.id, name, Utc::now(), cap);
                        tracing::warn!(shop = %shop.id, adapter = name, event = %envelope.event_id, %reason, pause_secs = pause.num_seconds(), "sender's API failing; event queued until it answers");
                        ledger.enqueue(&shop.id, name, &envelope, &reason, now)?;
                        Outcome::Queued { reason }
                    }
                    Err(EnrichError::Permanent(reason)) => {
                        breakers.close(&shop.id, name);
                        Outcome::Done(ledger.record_ignored(
                            &shop.id,
                            name,
                            &envelope.event_id,
                            "sale",
                            &format!("rejected: {reason}"),
                            now,
                        )?)
                    }
                }
            } else {
                Outcome::Done(with_request(req, || {
                    apply_event(ledger, shop, adapter.name(), &envelope, now)
                })?)
            }
        }
    };
    // Always wait for durability, duplicates included: the original delivery may be
    // committed in memory by a concurrent request whose flush has not finished yet.
    if durable_acks {
        ledger.durable().await?;
    }
    if matches!(outcome, Outcome::Done(Applied::New(_))) {
        wakeup.wake();
    }
    Ok(outcome)
}

/// Apply a complete canonical event to the ledger (earn, reverse, customer update or
/// a recorded reason to ignore it). Deduplicated on the event id.
pub fn apply_event(
    ledger: &Ledger,
    shop: &ShopConfig,
    adapter: &str,
    envelope: &EventEnvelope,
    now: DateTime<Utc>,
) -> Result<Applied, LedgerError> {
    let rules = shop.rules.current();
    let ignore = |kind: &str, reason: &str| {
        ledger.record_ignored(&shop.id, adapter, &envelope.event_id, kind, reason, now)
    };
    let applied = match &envelope.event {
        PosEvent::Sale(sale) => {
            let claims = sale
                .customer
                .as_ref()
                .map(|c| IdentityClaims::from_customer(adapter, c, shop.country))
                .filter(|c| !c.identities.is_empty());
            if sale.currency != shop.currency {
                ignore(
                    "sale",
                    &format!(
                        "sale currency {} is not the shop currency {}",
                        sale.currency, shop.currency
                    ),
                )?
            } else if let Some(claims) = claims {
                // Score against a snapshot of the member read outside the transaction;
                // the transaction refuses the posting if the member changed meanwhile,
                // and the sale is scored again (optimistic, so scoring stays pure).
                let mut attempt = 0;
                let applied = loop {
                    let member = ledger.find_member(&shop.id, &claims)?;
                    let mut snapshot = member_snapshot(member.as_ref(), envelope.occurred_at, shop);
                    let ctx = rules::SaleContext {
                        sale,
                        adapter,
                        occurred_at: envelope.occurred_at,
                        timezone: shop.timezone,
                    };
                    let mut award = rules::score(&ctx, &snapshot, &rules);
                    // A program may let the sale that crosses a tier threshold earn at
                    // the new tier: score once more with that tier.
                    if let Some(tp) = rules
                        .tiers
                        .as_ref()
                        .filter(|t| t.crossing_sale == rules::tiers::CrossingSale::NewTier)
                    {
                        let day = envelope
                            .occurred_at
                            .with_timezone(&shop.timezone)
                            .date_naive();
                        let mut buckets = member
                            .as_ref()
                            .map(|m| m.tier_buckets.clone())
                            .unwrap_or_default();
                        rules::tiers::record(&mut buckets, day, award.points, award.eligible_spend);
                        let target = tp.tier_for(tp.qualifying(&buckets, day));
                        if tp.rank(target) > tp.rank(snapshot.tier.as_deref()) {
                            snapshot.tier = target.map(str::to_string);
                            award = rules::score(&ctx, &snapshot, &rules);
                        }
                    }
                    let cmd = EarnCommand {
                        shop: &shop.id,
                        timezone: shop.timezone,
                        policy: &rules.policy,
                        taxes_included: sale.taxes_included,
                        sale: Some(sale),
                        rules_version: &rules.version,
                        expected_revision: member.as_ref().map(|m| m.revision),
                        tiers: rules.tiers.as_ref(),
                        signup_bonus: rules.bonuses.signup,
                        referral: crate::ledger::bonus::ReferralBonuses {
                            referrer: rules.bonuses.referral_referrer,
                            referee: rules.bonuses.referral_referee,
                        },
                        total: sale.total,
                        adapter,
                        event_id: &envelope.event_id,
                        order_id: &sale.order_id,
                        occurred_at: envelope.occurred_at,
                        claims: &claims,
                        award: &award,
                    };
                    match ledger.apply_earn(&cmd, now) {
                        Err(LedgerError::StaleSnapshot) if attempt < 16 => attempt += 1,
                        other => break other?,
                    }
                };
                if let Applied::New(r) = &applied {
                    tracing::info!(
                        shop = %shop.id,
                        order = %sale.order_id,
                        buyer = %claims.identities.first().map(|i| redact(&i.value)).unwrap_or_default(),
                        outcome = ?r.outcome,
                        "sale recorded"
                    );
                }
                applied
            } else {
                ignore(
                    "sale",
                    "guest checkout without customer id, e-mail or phone",
                )?
            }
        }
        PosEvent::Refund(refund) if refund.currency != shop.currency => ignore(
            "refund",
            &format!(
                "refund currency {} is not the shop currency {}",
                refund.currency, shop.currency
            ),
        )?,
        PosEvent::Refund(refund) => ledger.apply_reversal(
            &ReversalCommand {
                shop: &shop.id,
                timezone: shop.timezone,
                policy: &rules.policy,
                adapter,
                event_id: &envelope.event_id,
                order_id: &refund.order_id,
                kind: ReversalKind::Refund {
                    refund_id: refund.refund_id.clone(),
                    lines: refund.lines.clone(),
                    amount: refund.amount.map(|m| m.amount),
                },
                occurred_at: envelope.occurred_at,
            },
            now,
        )?,
        PosEvent::Cancel(cancel) => ledger.apply_reversal(
            &ReversalCommand {
                shop: &shop.id,
                timezone: shop.timezone,
                policy: &rules.policy,
                adapter,
                event_id: &envelope.event_id,
                order_id: &cancel.order_id,
                kind: ReversalKind::Cancel {
                    reason: cancel.reason.clone(),
                },
                occurred_at: envelope.occurred_at,
            },
            now,
        )?,
        PosEvent::CustomerUpsert(c) => {
            let claims = IdentityClaims::from_customer(adapter, &c.customer, shop.country);
            if claims.identities.is_empty() {
                ignore("customer", "customer without id, e-mail or phone")?
            } else {
                ledger.apply_customer(
                    &CustomerCommand {
                        shop: &shop.id,
                        adapter,
                        event_id: &envelope.event_id,
                        claims: &claims,
                        birthday: c.birthday,
                        consent: c.consent,
                        tags: c.tags.as_deref(),
                        signup_bonus: rules.bonuses.signup,
                        policy: &rules.policy,
                        timezone: shop.timezone,
                    },
                    now,
                )?
            }
        }
    };
    Ok(applied)
}

/// The request id the HTTP layer gave this webhook (`x-request-id`).
fn request_id(req: &RawRequest) -> Option<&str> {
    req.headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
}

/// Run a synchronous ledger call with the webhook's request id on the messages it
/// queues.
fn with_request<T>(req: &RawRequest, f: impl FnOnce() -> T) -> T {
    let _scope = RequestScope::enter(request_id(req));
    f()
}

/// What the rules may know about a member when scoring a sale at `at`.
fn member_snapshot(
    member: Option<&crate::member::Member>,
    at: DateTime<Utc>,
    shop: &ShopConfig,
) -> rules::MemberSnapshot {
    let Some(m) = member else {
        return rules::MemberSnapshot {
            first_purchase: true,
            ..Default::default()
        };
    };
    let local = at.with_timezone(&shop.timezone).date_naive();
    let month = local.format("%Y-%m").to_string();
    rules::MemberSnapshot {
        tier: m.tier.clone(),
        tags: m.tags.clone(),
        first_purchase: m.sales == 0,
        earned_today: m
            .earned_day
            .as_ref()
            .filter(|(d, _)| *d == local)
            .map(|(_, p)| *p)
            .unwrap_or_default(),
        earned_this_month: m
            .earned_month
            .as_ref()
            .filter(|(mm, _)| *mm == month)
            .map(|(_, p)| *p)
            .unwrap_or_default(),
    }
}

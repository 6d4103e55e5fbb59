//! Ledger scenarios against a real sled database in a temporary directory.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use loyaltyd_adapter::{RefundLine, ShopId};
use rust_decimal::Decimal;

use super::earn::EarnCommand;
use super::journal::{Account, PostingKind};
use super::policy::{ExpiryPolicy, LedgerPolicy, NegativeBalance};
use super::reverse::{ReversalCommand, ReversalKind};
use super::spend::{AdjustCommand, Idempotency, RedeemCommand, SpendOutcome};
use super::*;
use crate::member::{Identity, IdentityClaims};
use crate::rules::{Award, Contribution, LineEligible};

pub(crate) struct World {
    _dir: tempfile::TempDir,
    pub ledger: Ledger,
    pub shop: ShopId,
    pub policy: LedgerPolicy,
    pub tz: Tz,
    pub now: DateTime<Utc>,
}

pub(crate) fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

impl World {
    pub fn new(policy: LedgerPolicy) -> World {
        let dir = tempfile::tempdir().unwrap();
        World {
            ledger: Ledger::open_offline(dir.path()).unwrap(),
            _dir: dir,
            shop: ShopId::new("demo").unwrap(),
            policy,
            tz: "America/New_York".parse().unwrap(),
            now: "2026-11-20T15:00:00Z".parse().unwrap(),
        }
    }

    pub fn claims(customer: &str) -> IdentityClaims {
        IdentityClaims {
            identities: vec![Identity {
                kind: crate::member::IdentityKind::ShopifyCustomerId,
                value: customer.to_string(),
            }],
            first_name: None,
            last_name: None,
            source: Some("shopify".into()),
            unverified_email: None,
        }
    }

    /// A sale of one line per (line id, eligible) at 1 point per unit.
    pub fn earn(
        &self,
        event: &str,
        order: &str,
        customer: &str,
        lines: &[(&str, &str)],
    ) -> Applied {
        let lines: Vec<LineEligible> = lines
            .iter()
            .map(|(id, e)| LineEligible {
                line_id: id.to_string(),
                eligible: d(e),
            })
            .collect();
        let eligible: Decimal = lines.iter().map(|l| l.eligible).sum();
        let points = Points(eligible.floor().try_into().unwrap());
        let award = Award {
            points,
            eligible_spend: eligible,
            contributions: vec![Contribution {
                rule_id: "earn.base".into(),
                points,
                detail: String::new().into(),
            }],
            lines,
            cash_back: Decimal::ZERO,
        };
        let claims = Self::claims(customer);
        let expected_revision = self
            .ledger
            .find_member(&self.shop, &claims)
            .unwrap()
            .map(|m| m.revision);
        self.ledger
            .apply_earn(
                &EarnCommand {
                    shop: &self.shop,
                    timezone: self.tz,
                    policy: &self.policy,
                    adapter: "shopify",
                    event_id: event,
                    order_id: order,
                    occurred_at: self.now,
                    claims: &claims,
                    award: &award,
                    taxes_included: false,
                    sale: None,
                    rules_version: "test",
                    expected_revision,
                    tiers: None,
                    signup_bonus: 0,
                    referral: crate::ledger::bonus::ReferralBonuses {
                        referrer: 0,
                        referee: 0,
                    },
                    total: eligible,
                },
                self.now,
            )
            .unwrap()
    }

    pub fn refund(
        &self,
        event: &str,
        order: &str,
        refund_id: &str,
        lines: &[(&str, &str)],
    ) -> Applied {
        let lines = lines
            .iter()
            .map(|(id, s)| RefundLine {
                line_id: id.to_string(),
                quantity: Decimal::ONE,
                subtotal: d(s),
                tax: Decimal::ZERO,
            })
            .collect();
        self.reverse(
            event,
            order,
            ReversalKind::Refund {
                refund_id: refund_id.into(),
                lines,
                amount: None,
            },
        )
    }

    pub fn cancel(&self, event: &str, order: &str) -> Applied {
        self.reverse(event, order, ReversalKind::Cancel { reason: None })
    }

    fn reverse(&self, event: &str, order: &str, kind: ReversalKind) -> Applied {
        self.ledger
            .apply_reversal(
                &ReversalCommand {
                    shop: &self.shop,
                    timezone: self.tz,
                    policy: &self.policy,
                    adapter: "shopify",
                    event_id: event,
                    order_id: order,
                    kind,
                    occurred_at: self.now,
                },
                self.now,
            )
            .unwrap()
    }

    pub fn member(&self, customer: &str) -> Member {
        self.ledger
            .member_by_identity(
                &self.shop,
                crate::member::IdentityKind::ShopifyCustomerId,
                customer,
            )
            .unwrap()
            .unwrap()
    }

    pub fn balances(&self, customer: &str) -> (i64, i64) {
        let b = self
            .ledger
            .balances(&self.shop, &self.member(customer))
            .unwrap();
        (b.available.0, b.pending.0)
    }

    pub fn redeem(
        &self,
        customer: &str,
        points: i64,
        key: &str,
        order: Option<&str>,
    ) -> Result<SpendOutcome, LedgerError> {
        let m = self.member(customer);
        self.ledger.redeem(
            &RedeemCommand {
                shop: &self.shop,
                member: &m.id,
                points: Points(points),
                reward: None,
                order_id: order.map(str::to_string),
                actor: "test",
                idempotency: Idempotency {
                    key,
                    fingerprint: &format!("{points}{order:?}"),
                },
            },
            self.now,
        )
    }

    pub fn adjust(
        &self,
        customer: &str,
        points: i64,
        key: &str,
    ) -> Result<SpendOutcome, LedgerError> {
        let m = self.member(customer);
        self.ledger.adjust(
            &AdjustCommand {
                shop: &self.shop,
                timezone: self.tz,
                policy: &self.policy,
                member: &m.id,
                points: Points(points),
                reason: "goodwill",
                actor: "test",
                idempotency: Idempotency {
                    key,
                    fingerprint: &points.to_string(),
                },
            },
            self.now,
        )
    }

    pub fn assert_verified(&self) {
        let v = self.ledger.verify(&self.shop).unwrap();
        assert!(v.problems.is_empty(), "verify found: {:#?}", v.problems);
    }
}

fn allow() -> LedgerPolicy {
    LedgerPolicy::default()
}

#[test]
fn an_earning_opens_a_lot_and_posts_balanced_entries() {
    let w = World::new(allow());
    w.earn("e1", "o1", "c1", &[("l1", "11.00")]);
    assert_eq!(w.balances("c1"), (11, 0));
    let m = w.member("c1");
    let lots = w.ledger.member_lots(&w.shop, &m.id).unwrap();
    assert_eq!(lots.available(), Points(11));
    assert_eq!(
        w.ledger.account_balance(&w.shop, &Account::Issued).unwrap(),
        Points(-11)
    );
    w.assert_verified();
}

#[test]
fn redemptions_take_the_oldest_lots_first_and_refuse_overdrafts() {
    let mut w = World::new(allow());
    w.earn("e1", "o1", "c1", &[("l1", "10")]);
    w.now += Duration::days(1);
    w.earn("e2", "o2", "c1", &[("l1", "10")]);
    let before = w.ledger.journal_len(&w.shop).unwrap();
    assert!(matches!(
        w.redeem("c1", 25, "k0", None),
        Err(LedgerError::InsufficientPoints { .. })
    ));
    assert_eq!(
        w.ledger.journal_len(&w.shop).unwrap(),
        before,
        "a refused redemption posts nothing"
    );
    w.redeem("c1", 15, "k1", None).unwrap();
    let lots = w.ledger.member_lots(&w.shop, &w.member("c1").id).unwrap();
    assert_eq!(lots.lots.len(), 1);
    assert_eq!(lots.lots[0].remaining, Points(5));
    assert_eq!(
        lots.lots[0].id, 2,
        "the older lot (seq 1) was used up first"
    );
    w.assert_verified();
}

#[test]
fn the_same_idempotency_key_replays_and_a_different_body_conflicts() {
    let w = World::new(allow());
    w.earn("e1", "o1", "c1", &[("l1", "100")]);
    let first = w.redeem("c1", 30, "key-1", None).unwrap();
    let again = w.redeem("c1", 30, "key-1", None).unwrap();
    match (first, again) {
        (SpendOutcome::New(a), SpendOutcome::Replayed(b)) => assert_eq!(a, b),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.balances("c1"), (70, 0));
    assert!(matches!(
        w.redeem("c1", 31, "key-1", None),
        Err(LedgerError::IdempotencyConflict)
    ));
    assert_eq!(w.balances("c1"), (70, 0));
}

#[test]
fn partial_refunds_reverse_cumulatively_and_in_full_exactly_what_was_earned() {
    let w = World::new(allow());
    // Eligible 10.00 on two lines, earning 10 points.
    w.earn("e1", "o1", "c1", &[("a", "3.50"), ("b", "6.50")]);
    // Refund 3.50 of 10.00: floor(10 × 0.35) = 3.
    w.refund("r1", "o1", "R1", &[("a", "3.50")]);
    assert_eq!(w.balances("c1"), (7, 0));
    // A second delivery of the same refund id changes nothing.
    w.refund("r1-again", "o1", "R1", &[("a", "3.50")]);
    assert_eq!(w.balances("c1"), (7, 0));
    // Refund 3.25 more: floor(10 × 0.675) = 6 in total, so 3 more.
    w.refund("r2", "o1", "R2", &[("b", "3.25")]);
    assert_eq!(w.balances("c1"), (4, 0));
    // The rest: exactly the 10 earned, never more, whatever the rounding.
    w.refund("r3", "o1", "R3", &[("b", "3.25")]);
    assert_eq!(w.balances("c1"), (0, 0));
    w.cancel("c-1", "o1");
    assert_eq!(w.balances("c1"), (0, 0));
    assert_eq!(
        w.ledger
            .account_balance(&w.shop, &Account::Reversed)
            .unwrap(),
        Points(10)
    );
    w.assert_verified();
}

#[test]
fn a_cancellation_reverses_what_the_sale_posted_once() {
    let w = World::new(allow());
    w.earn("e1", "o1", "c1", &[("a", "42.99")]);
    w.earn("e2", "o2", "c1", &[("a", "5")]);
    w.cancel("x1", "o1");
    assert_eq!(w.balances("c1"), (5, 0));
    assert!(matches!(
        w.cancel("x2", "o1"),
        Applied::New(DeliveryRecord {
            outcome: DeliveryOutcome::AlreadyScored { .. },
            ..
        })
    ));
    assert_eq!(w.balances("c1"), (5, 0));
    w.assert_verified();
}

#[test]
fn spent_points_go_negative_under_allow_and_later_earnings_pay_the_debt() {
    let w = World::new(allow());
    w.earn("e1", "o1", "c1", &[("a", "50")]);
    w.redeem("c1", 50, "k", None).unwrap();
    w.cancel("x1", "o1");
    assert_eq!(w.balances("c1"), (-50, 0));
    w.earn("e2", "o2", "c1", &[("a", "70")]);
    assert_eq!(w.balances("c1"), (20, 0));
    let lots = w.ledger.member_lots(&w.shop, &w.member("c1").id).unwrap();
    assert_eq!(
        lots.available(),
        Points(20),
        "the new lot holds only what is left after the debt"
    );
    w.assert_verified();
}

#[test]
fn spent_points_are_clamped_at_zero_with_the_shortfall_recorded() {
    let w = World::new(LedgerPolicy {
        negative_balance: NegativeBalance::Clamp,
        ..allow()
    });
    w.earn("e1", "o1", "c1", &[("a", "50")]);
    w.redeem("c1", 40, "k", None).unwrap();
    let out = w.cancel("x1", "o1");
    match out {
        Applied::New(DeliveryRecord {
            outcome: DeliveryOutcome::Reversed {
                points, shortfall, ..
            },
            ..
        }) => {
            assert_eq!((points, shortfall), (Points(10), Points(40)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.balances("c1"), (0, 0));
    let postings = w
        .ledger
        .member_postings(&w.shop, &w.member("c1").id, 1)
        .unwrap();
    assert_eq!(postings[0].kind, PostingKind::Reverse);
    assert_eq!(postings[0].shortfall, Points(40));
    w.assert_verified();
}

#[test]
fn pending_points_are_reversed_first_and_mature_once_after_the_window() {
    let mut w = World::new(LedgerPolicy {
        pending_days: 14,
        ..allow()
    });
    w.earn("e1", "o1", "c1", &[("a", "30")]);
    assert_eq!(w.balances("c1"), (0, 30));
    w.refund("r1", "o1", "R1", &[("a", "10")]);
    assert_eq!(w.balances("c1"), (0, 20), "the refund took pending points");
    // Nothing matures early.
    assert_eq!(
        w.ledger
            .mature_due(&w.shop, w.now + Duration::days(13))
            .unwrap()
            .postings,
        0
    );
    w.now += Duration::days(15);
    assert_eq!(
        w.ledger.mature_due(&w.shop, w.now).unwrap().points,
        Points(20)
    );
    assert_eq!(w.balances("c1"), (20, 0));
    // Running the job again changes nothing.
    assert_eq!(w.ledger.mature_due(&w.shop, w.now).unwrap().postings, 0);
    assert_eq!(w.balances("c1"), (20, 0));
    w.assert_verified();
}

#[test]
fn fixed_expiry_lapses_lots_at_local_midnight_and_is_idempotent() {
    let mut w = World::new(LedgerPolicy {
        expiry: ExpiryPolicy::Fixed { days: 30 },
        ..allow()
    });
    // 2026-11-20 15:00Z is 10:00 in New York: valid 30 local days, through 19 December.
    w.earn("e1", "o1", "c1", &[("a", "25")]);
    let lapse: DateTime<Utc> = "2026-12-20T05:00:00Z".parse().unwrap();
    let lots = w.ledger.member_lots(&w.shop, &w.member("c1").id).unwrap();
    assert_eq!(lots.lots[0].expires_at, Some(lapse));
    let r = w
        .ledger
        .expire_due(&w.shop, &w.policy, w.tz, lapse - Duration::seconds(1))
        .unwrap();
    assert_eq!(r.postings, 0);
    w.now = lapse;
    let r = w
        .ledger
        .expire_due(&w.shop, &w.policy, w.tz, lapse)
        .unwrap();
    assert_eq!(r.points, Points(25));
    assert_eq!(
        w.ledger
            .expire_due(&w.shop, &w.policy, w.tz, lapse)
            .unwrap()
            .postings,
        0
    );
    assert_eq!(w.balances("c1"), (0, 0));
    assert_eq!(
        w.ledger
            .account_balance(&w.shop, &Account::Expired)
            .unwrap(),
        Points(25)
    );
    w.assert_verified();
}

#[test]
fn inactivity_expiry_lapses_everything_after_the_quiet_period_only() {
    let mut w = World::new(LedgerPolicy {
        expiry: ExpiryPolicy::Inactivity { days: 90 },
        ..allow()
    });
    w.earn("e1", "o1", "c1", &[("a", "10")]);
    w.now += Duration::days(60);
    w.earn("e2", "o2", "c1", &[("a", "5")]);
    let r = w
        .ledger
        .expire_due(&w.shop, &w.policy, w.tz, w.now + Duration::days(80))
        .unwrap();
    assert_eq!(r.postings, 0, "activity 60 days in restarted the clock");
    let r = w
        .ledger
        .expire_due(&w.shop, &w.policy, w.tz, w.now + Duration::days(91))
        .unwrap();
    assert_eq!(r.points, Points(15));
    w.assert_verified();
}

#[test]
fn a_full_refund_returns_points_redeemed_against_the_order_once() {
    let w = World::new(allow());
    w.earn("e1", "o1", "c1", &[("a", "100")]);
    w.redeem("c1", 50, "k", Some("o2")).unwrap();
    w.earn("e2", "o2", "c1", &[("a", "20")]);
    assert_eq!(w.balances("c1"), (70, 0));
    w.cancel("x1", "o2");
    // −20 earned on o2, +50 redeemed on it given back.
    assert_eq!(w.balances("c1"), (100, 0));
    w.refund("r-late", "o2", "R9", &[("a", "20")]);
    assert_eq!(w.balances("c1"), (100, 0));
    w.assert_verified();
}

#[test]
fn a_refund_that_arrives_before_its_sale_is_applied_when_the_sale_comes() {
    let w = World::new(allow());
    let out = w.refund("r1", "o1", "R1", &[("a", "5")]);
    assert!(matches!(
        out,
        Applied::New(DeliveryRecord {
            outcome: DeliveryOutcome::Deferred { .. },
            ..
        })
    ));
    w.earn("e1", "o1", "c1", &[("a", "10"), ("b", "10")]);
    assert_eq!(w.balances("c1"), (15, 0));
    w.assert_verified();
}

impl World {
    pub fn refund_amount(
        &self,
        event: &str,
        order: &str,
        refund_id: &str,
        amount: &str,
    ) -> Applied {
        self.reverse(
            event,
            order,
            ReversalKind::Refund {
                refund_id: refund_id.into(),
                lines: Vec::new(),
                amount: Some(d(amount)),
            },
        )
    }
}

#[test]
fn an_amount_only_refund_reverses_in_proportion_to_the_money_returned() {
    let w = World::new(allow());
    // Eligible 11.00 earning 11 points; in the test world the total paid equals the
    // eligible spend, so returning 2.92 reverses floor(11 × 2.92 / 11) = 2.
    w.earn("e1", "o1", "c1", &[("a", "11.00")]);
    w.refund_amount("r1", "o1", "R1", "2.92");
    assert_eq!(w.balances("c1"), (9, 0));
    // Returning the rest (and more) reverses exactly what is left, never more.
    w.refund_amount("r2", "o1", "R2", "50.00");
    assert_eq!(w.balances("c1"), (0, 0));
    w.assert_verified();
}

#[test]
fn adjustments_need_points_to_remove() {
    let w = World::new(allow());
    w.earn("e1", "o1", "c1", &[("a", "10")]);
    w.adjust("c1", 5, "a1").unwrap();
    assert_eq!(w.balances("c1"), (15, 0));
    assert!(matches!(
        w.adjust("c1", -16, "a2"),
        Err(LedgerError::InsufficientPoints { .. })
    ));
    w.adjust("c1", -15, "a3").unwrap();
    assert_eq!(w.balances("c1"), (0, 0));
    w.assert_verified();
}

#[test]
fn verify_names_a_stored_balance_that_disagrees_with_the_journal() {
    let w = World::new(allow());
    w.earn("e1", "o1", "c1", &[("a", "10")]);
    let m = w.member("c1");
    let key = keys::member(&w.shop, &m.id);
    let mut record: tx::MemberRecord =
        serde_json::from_slice(&w.ledger.members.get(&key).unwrap().unwrap()).unwrap();
    record.available = Points(11);
    w.ledger
        .members
        .insert(key, serde_json::to_vec(&record).unwrap())
        .unwrap();
    let v = w.ledger.verify(&w.shop).unwrap();
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("available") && p.contains("stored 11")),
        "{:?}",
        v.problems
    );
}

#[test]
fn the_same_event_twice_is_a_duplicate_with_the_first_answer() {
    let w = World::new(allow());
    let a = w.earn("e1", "o1", "c1", &[("a", "10")]);
    let b = w.earn("e1", "o1", "c1", &[("a", "10")]);
    match (a, b) {
        (Applied::New(x), Applied::Duplicate(y)) => assert_eq!(x, y),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.ledger.journal_len(&w.shop).unwrap(), 1);
}

#[test]
fn a_sale_scored_on_a_stale_member_snapshot_is_refused_and_posts_nothing() {
    let w = World::new(allow());
    w.earn("e1", "o1", "c1", &[("a", "10")]);
    let claims = World::claims("c1");
    let award = Award {
        points: Points(5),
        eligible_spend: d("5"),
        contributions: Vec::new(),
        lines: Vec::new(),
        cash_back: Decimal::ZERO,
    };
    let r = w.ledger.apply_earn(
        &EarnCommand {
            shop: &w.shop,
            timezone: w.tz,
            policy: &w.policy,
            adapter: "shopify",
            event_id: "e2",
            order_id: "o2",
            occurred_at: w.now,
            claims: &claims,
            award: &award,
            taxes_included: false,
            sale: None,
            rules_version: "test",
            expected_revision: Some(999),
            tiers: None,
            signup_bonus: 0,
            referral: crate::ledger::bonus::ReferralBonuses {
                referrer: 0,
                referee: 0,
            },
            total: d("5"),
        },
        w.now,
    );
    assert!(matches!(r, Err(LedgerError::StaleSnapshot)), "{r:?}");
    assert_eq!(w.ledger.journal_len(&w.shop).unwrap(), 1);
    assert_eq!(w.balances("c1"), (10, 0));
}

/// Every notice queued in the outbox, in queue order.
fn queued_notices(w: &World) -> Vec<crate::notify::outbox::Notice> {
    w.ledger
        .db()
        .open_tree(crate::notify::outbox::PENDING_TREE)
        .unwrap()
        .iter()
        .values()
        .map(|v| {
            serde_json::from_slice::<crate::notify::outbox::OutboxMessage>(&v.unwrap())
                .unwrap()
                .notice
        })
        .collect()
}

/// The reward notices in the outbox, as (reward id, available) in queue order.
fn unlock_notices(w: &World) -> Vec<(String, i64)> {
    queued_notices(w)
        .into_iter()
        .filter_map(|n| match n {
            crate::notify::outbox::Notice::RewardUnlocked {
                reward, available, ..
            } => Some((reward, available.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_reward_is_announced_whenever_the_balance_reaches_its_cost_not_only_on_earnings() {
    let mut w = World::new(LedgerPolicy {
        pending_days: 14,
        ..allow()
    });
    let reward = |id: &str, points| crate::rules::Reward {
        id: id.into(),
        name: id.into(),
        points,
        kind: Default::default(),
        value: None,
    };
    w.ledger
        .set_rewards(&w.shop, vec![reward("coffee", 50), reward("mug", 200)]);
    // Pending points do not unlock anything yet.
    w.earn("e1", "o1", "c1", &[("a", "60")]);
    assert!(unlock_notices(&w).is_empty());
    // Maturing them does.
    w.now += Duration::days(15);
    w.ledger.mature_due(&w.shop, w.now).unwrap();
    assert_eq!(unlock_notices(&w), vec![("coffee".to_string(), 60)]);
    // Running the job again announces nothing new.
    w.ledger.mature_due(&w.shop, w.now).unwrap();
    assert_eq!(unlock_notices(&w).len(), 1);
    // An adjustment past the next cost announces that reward only.
    w.adjust("c1", 150, "k1").unwrap();
    assert_eq!(
        unlock_notices(&w),
        vec![("coffee".to_string(), 60), ("mug".to_string(), 210)]
    );
    // Going down and back up past a cost announces it again (a new crossing).
    w.adjust("c1", -20, "k2").unwrap();
    w.adjust("c1", 20, "k3").unwrap();
    assert_eq!(unlock_notices(&w).last(), Some(&("mug".to_string(), 210)));
    assert_eq!(unlock_notices(&w).len(), 3);
    w.assert_verified();
}

#[test]
fn members_are_warned_once_before_their_points_expire() {
    let mut w = World::new(LedgerPolicy {
        expiry: crate::ledger::policy::ExpiryPolicy::Fixed { days: 30 },
        ..allow()
    });
    w.earn("e1", "o1", "c1", &[("a", "40")]);
    // Too early: the expiry is more than 14 days away.
    assert_eq!(w.ledger.warn_expiring(&w.shop, 14, w.now).unwrap(), 0);
    w.now += Duration::days(20);
    assert_eq!(w.ledger.warn_expiring(&w.shop, 14, w.now).unwrap(), 1);
    assert_eq!(expiry_warnings(&w), vec![40]);
    // Once per expiry date.
    w.now += Duration::days(1);
    assert_eq!(w.ledger.warn_expiring(&w.shop, 14, w.now).unwrap(), 0);
    assert_eq!(w.ledger.warn_expiring(&w.shop, 0, w.now).unwrap(), 0);
    w.assert_verified();
}

/// "Expiring soon" notices queued so far, as points.
fn expiry_warnings(w: &World) -> Vec<i64> {
    queued_notices(w)
        .into_iter()
        .filter_map(|n| match n {
            crate::notify::outbox::Notice::ExpiringSoon { points, .. } => Some(points.0),
            _ => None,
        })
        .collect()
}

#[test]
fn one_pass_over_the_members_does_what_the_jobs_did_one_after_the_other() {
    use crate::ledger::pass::{MemberJobs, PassReport};
    let policy = LedgerPolicy {
        pending_days: 14,
        expiry: crate::ledger::policy::ExpiryPolicy::Fixed { days: 30 },
        ..allow()
    };
    // c1 earns on day 0, c2 on day 10, c3 on day 20.
    let world = || {
        let mut w = World::new(policy);
        w.earn("e1", "o1", "c1", &[("a", "30")]);
        w.now += Duration::days(10);
        w.earn("e2", "o2", "c2", &[("a", "50")]);
        w.now += Duration::days(10);
        w.earn("e3", "o3", "c3", &[("a", "70")]);
        w
    };
    let (mut apart, mut once) = (world(), world());
    let jobs = MemberJobs {
        policy: &policy,
        timezone: once.tz,
        tiers: None,
        birthday_points: 0,
        warning_days: 14,
    };
    // Day 40: c1's lot matured (day 14) and lapsed (day 30) without a pass between, so
    // the pass must expire the lot its maturation has just made available; c2's matured
    // and lapses on day 40; c3's matured on day 34 and lapses on day 50, inside the
    // 14-day warning.
    let mut day = 20;
    for days in [20, 0, 30] {
        day += days;
        apart.now += Duration::days(days);
        once.now += Duration::days(days);
        let shop = apart.shop.clone();
        let mut expect = PassReport {
            postings: apart.ledger.mature_due(&shop, apart.now).unwrap().postings,
            notices: 0,
        };
        expect.postings += apart
            .ledger
            .expire_due(&shop, &policy, apart.tz, apart.now)
            .unwrap()
            .postings;
        expect.notices = apart.ledger.warn_expiring(&shop, 14, apart.now).unwrap();
        let got = once.ledger.member_jobs(&shop, &jobs, once.now).unwrap();
        assert_eq!(got, expect, "day {day}");
        for c in ["c1", "c2", "c3"] {
            assert_eq!(once.balances(c), apart.balances(c), "{c}");
        }
        assert_eq!(expiry_warnings(&once), expiry_warnings(&apart));
        assert_eq!(
            once.ledger.journal_len(&shop).unwrap(),
            apart.ledger.journal_len(&shop).unwrap()
        );
    }
    // What the first pass did, checked on its own: both matured and lapsed members are
    // at zero, c3 was warned once (70 points) and has since lapsed too.
    assert_eq!(
        [
            once.balances("c1"),
            once.balances("c2"),
            once.balances("c3")
        ],
        [(0, 0), (0, 0), (0, 0)]
    );
    assert_eq!(expiry_warnings(&once), vec![70]);
    // Running the pass again changes nothing.
    let again = once
        .ledger
        .member_jobs(&once.shop, &jobs, once.now)
        .unwrap();
    assert_eq!(again, PassReport::default());
    once.assert_verified();
}

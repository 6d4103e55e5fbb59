//! Property tests: random histories of earn / refund / cancel / redeem / adjust /
//! mature / expire against the real ledger. After every step `verify` must find
//! nothing (balances equal the journal's replay, every posting sums to zero, lots are
//! never negative and match the balances), and applying any prefix of the history
//! twice must end in the same ledger as applying it once.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use super::journal::Account;
use super::policy::{ExpiryPolicy, LedgerPolicy, NegativeBalance};
use super::tests::World;
use super::LedgerError;

#[derive(Debug, Clone)]
enum Op {
    Earn {
        customer: u8,
        order: u8,
        cents_a: u32,
        cents_b: u32,
    },
    Refund {
        order: u8,
        line_b: bool,
        cents: u32,
    },
    Cancel {
        order: u8,
    },
    Redeem {
        customer: u8,
        points: i64,
        order: Option<u8>,
    },
    Adjust {
        customer: u8,
        points: i64,
    },
    Wait {
        days: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u8, 0..8u8, 0..5000u32, 0..5000u32)
            .prop_map(|(customer, order, cents_a, cents_b)| Op::Earn { customer, order, cents_a, cents_b }),
        2 => (0..8u8, any::<bool>(), 1..4000u32).prop_map(|(order, line_b, cents)| Op::Refund { order, line_b, cents }),
        1 => (0..8u8).prop_map(|order| Op::Cancel { order }),
        2 => (0..3u8, 1..60i64, proptest::option::of(0..8u8))
            .prop_map(|(customer, points, order)| Op::Redeem { customer, points, order }),
        1 => (0..3u8, -30..30i64).prop_map(|(customer, points)| Op::Adjust { customer, points }),
        2 => (1..20i64).prop_map(|days| Op::Wait { days }),
    ]
}

fn policy() -> impl Strategy<Value = LedgerPolicy> {
    (
        prop_oneof![Just(0u32), Just(7u32)],
        prop_oneof![
            Just(ExpiryPolicy::Never),
            Just(ExpiryPolicy::Fixed { days: 30 }),
            Just(ExpiryPolicy::Inactivity { days: 25 })
        ],
        prop_oneof![Just(NegativeBalance::Allow), Just(NegativeBalance::Clamp)],
    )
        .prop_map(|(pending_days, expiry, negative_balance)| LedgerPolicy {
            pending_days,
            expiry,
            negative_balance,
        })
}

fn cents(c: u32) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// Apply op `i` at time `at`. Returns an error only for unexpected ledger failures.
fn apply(w: &mut World, i: usize, op: &Op, at: DateTime<Utc>) -> Result<(), LedgerError> {
    w.now = at;
    let customer = |c: u8| format!("c{c}");
    match op {
        Op::Earn {
            customer: c,
            order,
            cents_a,
            cents_b,
        } => {
            w.earn(
                &format!("e{i}"),
                &format!("o{order}"),
                &customer(*c),
                &[("a", &cents(*cents_a)), ("b", &cents(*cents_b))],
            );
        }
        Op::Refund {
            order,
            line_b,
            cents: c,
        } => {
            let line = if *line_b { "b" } else { "a" };
            w.refund(
                &format!("r{i}"),
                &format!("o{order}"),
                &format!("R{i}"),
                &[(line, &cents(*c))],
            );
        }
        Op::Cancel { order } => {
            w.cancel(&format!("x{i}"), &format!("o{order}"));
        }
        Op::Redeem {
            customer: c,
            points,
            order,
        } => match w.redeem(
            &customer(*c),
            *points,
            &format!("k{i}"),
            order.map(|o| format!("o{o}")).as_deref(),
        ) {
            Ok(_) | Err(LedgerError::InsufficientPoints { .. }) => {}
            Err(e) => return Err(e),
        },
        Op::Adjust {
            customer: c,
            points,
        } => {
            if *points != 0 {
                match w.adjust(&customer(*c), *points, &format!("a{i}")) {
                    Ok(_) | Err(LedgerError::InsufficientPoints { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Op::Wait { .. } => {
            w.ledger.mature_due(&w.shop, at)?;
            let policy = w.policy;
            w.ledger.expire_due(&w.shop, &policy, w.tz, at)?;
        }
    }
    Ok(())
}

/// Every customer exists from the start (a zero-point sale), so that whether an
/// operation applies never depends on how often a prefix was replayed.
fn world(policy: LedgerPolicy) -> World {
    let w = World::new(policy);
    for c in 0..3 {
        w.earn(
            &format!("init{c}"),
            &format!("init{c}"),
            &format!("c{c}"),
            &[("a", "0")],
        );
    }
    w
}

fn timeline(ops: &[Op], start: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut t = start;
    ops.iter()
        .map(|op| {
            t += match op {
                Op::Wait { days } => Duration::days(*days),
                _ => Duration::minutes(5),
            };
            t
        })
        .collect()
}

fn program_balances(w: &World) -> Vec<i64> {
    [
        Account::Issued,
        Account::Redeemed,
        Account::Expired,
        Account::Adjusted,
        Account::Reversed,
    ]
    .iter()
    .map(|a| w.ledger.account_balance(&w.shop, a).unwrap().0)
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn any_history_keeps_the_ledger_consistent_and_replaying_a_prefix_changes_nothing(
        policy in policy(),
        ops in proptest::collection::vec(op(), 1..40),
        cut in 0usize..40,
    ) {
        let mut once = world(policy);
        let times = timeline(&ops, once.now);
        for (i, op) in ops.iter().enumerate() {
            apply(&mut once, i, op, times[i]).unwrap();
            let v = once.ledger.verify(&once.shop).unwrap();
            prop_assert!(v.problems.is_empty(), "after op {} {:?}: {:#?}", i, op, v.problems);
        }

        let cut = cut.min(ops.len());
        let mut twice = world(policy);
        for (i, op) in ops[..cut].iter().enumerate() {
            apply(&mut twice, i, op, times[i]).unwrap();
        }
        for (i, op) in ops[..cut].iter().enumerate() {
            apply(&mut twice, i, op, times[i]).unwrap();
        }
        for (i, op) in ops.iter().enumerate().skip(cut) {
            apply(&mut twice, i, op, times[i]).unwrap();
        }
        let v = twice.ledger.verify(&twice.shop).unwrap();
        prop_assert!(v.problems.is_empty(), "{:#?}", v.problems);
        prop_assert_eq!(
            once.ledger.journal_len(&once.shop).unwrap(),
            twice.ledger.journal_len(&twice.shop).unwrap()
        );
        prop_assert_eq!(program_balances(&once), program_balances(&twice));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Whatever a member did before, a full refund of a sale takes back exactly the
    /// points that sale posted (allow policy: nothing is clamped).
    #[test]
    fn a_full_refund_after_any_sale_reverses_exactly_what_it_earned(
        ops in proptest::collection::vec(op(), 0..20),
        cents_a in 0..20_000u32,
        cents_b in 0..20_000u32,
    ) {
        let policy = LedgerPolicy::default();
        let mut w = world(policy);
        let times = timeline(&ops, w.now);
        for (i, op) in ops.iter().enumerate() {
            // Other orders only: the sale under test is "final".
            let op = match op {
                Op::Refund { .. } | Op::Cancel { .. } => continue,
                other => other,
            };
            apply(&mut w, i, op, times[i]).unwrap();
        }
        let before = w.balances("c0");
        let earned = match w.earn("final-sale", "final", "c0", &[("a", &cents(cents_a)), ("b", &cents(cents_b))]) {
            super::Applied::New(super::DeliveryRecord { outcome: super::DeliveryOutcome::Applied { points, .. }, .. }) => points.0,
            other => panic!("{other:?}"),
        };
        let after_earn = w.balances("c0");
        prop_assert_eq!(after_earn.0 + after_earn.1, before.0 + before.1 + earned);
        w.refund("final-refund", "final", "RF", &[("a", &cents(cents_a)), ("b", &cents(cents_b))]);
        let after = w.balances("c0");
        prop_assert_eq!(after.0 + after.1, before.0 + before.1);
        let v = w.ledger.verify(&w.shop).unwrap();
        prop_assert!(v.problems.is_empty(), "{:#?}", v.problems);
    }
}

//! Redemptions and manual adjustments from the admin API, idempotent on the
//! request's `Idempotency-Key`: the same key with the same request returns the first
//! answer and posts nothing; with a different request it is refused.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use loyaltyd_adapter::ShopId;
use serde::{Deserialize, Serialize};

use super::journal::{Account, Entry, Posting, PostingKind};
use super::policy::LedgerPolicy;
use super::tx::{abort, Credit, Tx, TxResult};
use super::{keys, Ledger, LedgerError, RedemptionLink};
use crate::member::MemberId;
use crate::points::Points;

/// The API idempotency of one request.
#[derive(Debug, Clone)]
pub struct Idempotency<'a> {
    /// The client's `Idempotency-Key`.
    pub key: &'a str,
    /// A fingerprint of the request (method, path, body).
    pub fingerprint: &'a str,
}

/// The result of a redemption or adjustment, as stored for replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendResult {
    /// The posting made.
    pub posting_id: u64,
    /// The member.
    pub member_id: MemberId,
    /// Points moved (negative for spending).
    pub points: Points,
    /// Available balance after.
    pub available: Points,
    /// Pending balance after.
    pub pending: Points,
}

/// Whether the result is new or a replay of the first answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendOutcome {
    /// Posted now.
    New(SpendResult),
    /// The same request was made before; this is its answer.
    Replayed(SpendResult),
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredRequest {
    fingerprint: String,
    result: Stored,
}

/// A first answer kept for replays: the result, or the refusal for lack of points
/// (so a retry with the same key gets the same 422, not a different outcome later).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Stored {
    Done(SpendResult),
    Refused { needed: Points, available: Points },
}

type Attempt = Result<SpendOutcome, LedgerError>;

/// A redemption request.
#[derive(Debug, Clone)]
pub struct RedeemCommand<'a> {
    /// Shop.
    pub shop: &'a ShopId,
    /// Member.
    pub member: &'a MemberId,
    /// Points to spend (> 0).
    pub points: Points,
    /// Reward id, when redeeming a catalogue reward.
    pub reward: Option<String>,
    /// The external order the points paid for, if any.
    pub order_id: Option<String>,
    /// Who asked (token name).
    pub actor: &'a str,
    /// Idempotency.
    pub idempotency: Idempotency<'a>,
}

/// An adjustment request.
#[derive(Debug, Clone)]
pub struct AdjustCommand<'a> {
    /// Shop.
    pub shop: &'a ShopId,
    /// Shop time zone (expiry of added points).
    pub timezone: Tz,
    /// Shop ledger terms.
    pub policy: &'a LedgerPolicy,
    /// Member.
    pub member: &'a MemberId,
    /// Signed points (≠ 0).
    pub points: Points,
    /// Why (required).
    pub reason: &'a str,
    /// Who (token name).
    pub actor: &'a str,
    /// Idempotency.
    pub idempotency: Idempotency<'a>,
}

fn replay(tx: &Tx<'_>, idem: &Idempotency<'_>) -> TxResult<Option<Attempt>> {
    let key = keys::api_idempotency(tx.shop, idem.key);
    match tx.get::<StoredRequest>(tx.index, &key)? {
        Some(s) if s.fingerprint == idem.fingerprint => Ok(Some(match s.result {
            Stored::Done(r) => Ok(SpendOutcome::Replayed(r)),
            Stored::Refused { needed, available } => {
                Err(LedgerError::InsufficientPoints { needed, available })
            }
        })),
        Some(_) => Err(abort(LedgerError::IdempotencyConflict)),
        None => Ok(None),
    }
}

fn remember(tx: &Tx<'_>, idem: &Idempotency<'_>, result: Stored) -> TxResult<()> {
    tx.put(
        tx.index,
        &keys::api_idempotency(tx.shop, idem.key),
        &StoredRequest {
            fingerprint: idem.fingerprint.to_string(),
            result,
        },
    )
}

/// Record the refusal under the key (no posting) and answer it.
fn refuse(
    tx: &Tx<'_>,
    idem: &Idempotency<'_>,
    needed: Points,
    available: Points,
) -> TxResult<Attempt> {
    remember(tx, idem, Stored::Refused { needed, available })?;
    Ok(Err(LedgerError::InsufficientPoints { needed, available }))
}

/// Notify the member, remember the answer under the key, and answer.
fn done(
    tx: &Tx<'_>,
    idem: &Idempotency<'_>,
    member: &crate::member::Member,
    posting: &Posting,
    moved: Points,
    notice_points: Points,
) -> TxResult<Attempt> {
    let result = SpendResult {
        posting_id: posting.seq,
        member_id: member.id.clone(),
        points: moved,
        available: tx.balance(&Account::MemberAvailable(member.id.clone()))?,
        pending: tx.balance(&Account::MemberPending(member.id.clone()))?,
    };
    tx.notify_posted(member, posting, notice_points, None)?;
    remember(tx, idem, Stored::Done(result.clone()))?;
    Ok(Ok(SpendOutcome::New(result)))
}

impl Ledger {
    /// Spend available points, oldest lots first. Fails with
    /// [`LedgerError::InsufficientPoints`] (and posts nothing) when the balance is too low.
    pub fn redeem(
        &self,
        cmd: &RedeemCommand<'_>,
        now: DateTime<Utc>,
    ) -> Result<SpendOutcome, LedgerError> {
        if cmd.points.0 <= 0 {
            return Err(LedgerError::Invariant(
                "a redemption must spend points".into(),
            ));
        }
        self.transact(cmd.shop, |tx| -> TxResult<Attempt> {
            if let Some(r) = replay(tx, &cmd.idempotency)? {
                return Ok(r);
            }
            let mut member = tx
                .member(cmd.member)?
                .ok_or_else(|| abort(LedgerError::UnknownMember))?;
            let available_acc = Account::MemberAvailable(member.id.clone());
            let available = tx.balance(&available_acc)?;
            if available < cmd.points {
                return refuse(tx, &cmd.idempotency, cmd.points, available);
            }
            let mut lots = tx.lots(&member.id)?;
            let (changes, taken) = lots.take_available(cmd.points);
            if taken != cmd.points {
                return Err(super::tx::invariant(format!(
                    "member {} has {available} available but lots hold {taken}",
                    member.id
                )));
            }
            let seq = tx.next_seq()?;
            let posting = Posting {
                seq,
                shop: tx.shop.clone(),
                rules_version: None,
                cash_back: rust_decimal::Decimal::ZERO,
                member: member.id.clone(),
                kind: PostingKind::Redeem,
                entries: vec![
                    Entry {
                        account: available_acc.clone(),
                        amount: -cmd.points,
                    },
                    Entry {
                        account: Account::Redeemed,
                        amount: cmd.points,
                    },
                ],
                lots: changes,
                occurred_at: now,
                recorded_at: now,
                idempotency_key: format!("api:{}", cmd.idempotency.key),
                order_id: cmd.order_id.clone(),
                explanation: Vec::new(),
                actor: Some(cmd.actor.to_string()),
                reason: None,
                reward: cmd.reward.clone(),
                shortfall: Points::ZERO,
            };
            tx.post(&posting)?;
            tx.save_lots(&member.id, &lots)?;
            if let Some(order) = &cmd.order_id {
                let key = keys::order_redemptions(tx.shop, order);
                let mut links: Vec<RedemptionLink> = tx.get(tx.index, &key)?.unwrap_or_default();
                links.push(RedemptionLink {
                    seq,
                    member: member.id.clone(),
                    points: cmd.points,
                    returned: false,
                });
                tx.put(tx.index, &key, &links)?;
            }
            member.last_activity_at = Some(now);
            member.updated_at = now;
            tx.save_member(&member)?;
            done(
                tx,
                &cmd.idempotency,
                &member,
                &posting,
                -cmd.points,
                cmd.points,
            )
        })?
    }

    /// Add or remove points by hand, with a reason. Removing more than is available is
    /// refused with [`LedgerError::InsufficientPoints`].
    pub fn adjust(
        &self,
        cmd: &AdjustCommand<'_>,
        now: DateTime<Utc>,
    ) -> Result<SpendOutcome, LedgerError> {
        if cmd.points.0 == 0 {
            return Err(LedgerError::Invariant(
                "an adjustment must move points".into(),
            ));
        }
        self.transact(cmd.shop, |tx| -> TxResult<Attempt> {
            if let Some(r) = replay(tx, &cmd.idempotency)? {
                return Ok(r);
            }
            let mut member = tx
                .member(cmd.member)?
                .ok_or_else(|| abort(LedgerError::UnknownMember))?;
            let available_acc = Account::MemberAvailable(member.id.clone());
            let mut lots = tx.lots(&member.id)?;
            // Numbered only once it is certain to post (the sequence has no gaps).
            let seq = tx.journal_len_in_tx()? + 1;
            let (entries, changes) = if cmd.points.0 > 0 {
                let (credit, changes) = tx.credit(
                    &member.id,
                    &mut lots,
                    seq,
                    Credit {
                        amount: cmd.points,
                        pending_until: None,
                        expires_at: cmd.policy.lot_expiry(now, cmd.timezone),
                        earned_at: now,
                        day: now.with_timezone(&cmd.timezone).date_naive(),
                    },
                )?;
                (
                    vec![
                        Entry {
                            account: Account::Adjusted,
                            amount: -cmd.points,
                        },
                        credit,
                    ],
                    changes,
                )
            } else {
                let want = -cmd.points;
                let available = tx.balance(&available_acc)?;
                if available < want {
                    return refuse(tx, &cmd.idempotency, want, available);
                }
                let (changes, taken) = lots.take_available(want);
                if taken != want {
                    return Err(super::tx::invariant(format!(
                        "member {} has {available} available but lots hold {taken}",
                        member.id
                    )));
                }
                (
                    vec![
                        Entry {
                            account: available_acc.clone(),
                            amount: -want,
                        },
                        Entry {
                            account: Account::Adjusted,
                            amount: want,
                        },
                    ],
                    changes,
                )
            };
            if tx.next_seq()? != seq {
                return Err(super::tx::invariant("sequence moved during an adjustment"));
            }
            let posting = Posting {
                seq,
                shop: tx.shop.clone(),
                rules_version: None,
                cash_back: rust_decimal::Decimal::ZERO,
                member: member.id.clone(),
                kind: PostingKind::Adjust,
                entries,
                lots: changes,
                occurred_at: now,
                recorded_at: now,
                idempotency_key: format!("api:{}", cmd.idempotency.key),
                order_id: None,
                explanation: Vec::new(),
                actor: Some(cmd.actor.to_string()),
                reason: Some(cmd.reason.to_string()),
                reward: None,
                shortfall: Points::ZERO,
            };
            tx.post(&posting)?;
            tx.save_lots(&member.id, &lots)?;
            // Staff touching the account counts as activity for inactivity expiry.
            member.last_activity_at = Some(now);
            member.updated_at = now;
            tx.save_member(&member)?;
            done(
                tx,
                &cmd.idempotency,
                &member,
                &posting,
                cmd.points,
                cmd.points,
            )
        })?
    }
}

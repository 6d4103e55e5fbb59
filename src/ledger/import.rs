//! `loyaltyd import balances`: members and opening balances brought over from a shop's
//! previous loyalty program, from a CSV file, on a stopped daemon's data.
//!
//! The whole file is read and checked first ([`read_balances_csv`]); nothing is written
//! unless every row is good. Each row then finds or creates its member by e-mail or
//! phone (as POS customers do) and posts ONE `imported` posting (program `issued` →
//! member `available`, a lot earned now under the shop's expiry terms), keyed
//! `import:<shop>:<hash of the row's normalised identity>`: running the same import
//! again changes nothing. Imports queue no notifications (see `verify`).

use std::collections::HashMap;
use std::io::Read;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use loyaltyd_adapter::ShopId;
use sha2::{Digest, Sha256};
use sled::Transactional;

use super::earn::find_or_create_member;
use super::journal::{Account, Entry, Posting, PostingKind};
use super::policy::LedgerPolicy;
use super::tx::{Credit, Tx, TxResult};
use super::{keys, Ledger, LedgerError};
use crate::member::{normalise_email, normalise_phone, Identity, IdentityClaims, IdentityKind};
use crate::member::{Member, MemberId};
use crate::points::Points;

/// The columns of a balances file, in the documented order; `external_id` is optional.
pub const COLUMNS: [&str; 6] = [
    "email",
    "phone",
    "first_name",
    "last_name",
    "points",
    "external_id",
];

/// Largest opening balance accepted on one row.
pub const MAX_POINTS: i64 = 1_000_000_000;

/// One good row of a balances file, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// Lower-cased e-mail.
    pub email: Option<String>,
    /// E.164 phone.
    pub phone: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Opening balance (≥ 0).
    pub points: Points,
    /// The member's id in the previous program (kept in the posting's reason).
    pub external_id: Option<String>,
}

impl ImportRow {
    /// The row's idempotency key: `import:<shop>:<sha256 of its normalised identity>`.
    pub fn key(&self, shop: &ShopId) -> String {
        let mut h = Sha256::new();
        h.update(b"email=");
        h.update(self.email.as_deref().unwrap_or("").as_bytes());
        h.update(b"\nphone=");
        h.update(self.phone.as_deref().unwrap_or("").as_bytes());
        let hex = format!("{:x}", h.finalize());
        format!("import:{shop}:{}", &hex[..32])
    }

    fn claims(&self) -> IdentityClaims {
        let mut identities = Vec::new();
        if let Some(e) = &self.email {
            identities.push(Identity {
                kind: IdentityKind::Email,
                value: e.clone(),
            });
        }
        if let Some(p) = &self.phone {
            identities.push(Identity {
                kind: IdentityKind::Phone,
                value: p.clone(),
            });
        }
        IdentityClaims {
            identities,
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            source: Some("import".into()),
            unverified_email: None,
        }
    }
}

/// A bad row: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// The column at fault (`-` for the row as a whole).
    pub column: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.column, self.reason)
    }
}

fn problem(line: u64, column: &str, reason: impl Into<String>) -> RowProblem {
    RowProblem {
        line,
        column: column.to_string(),
        reason: reason.into(),
    }
}

/// Read and check a whole balances file. Every bad row is reported (line, column,
/// reason); the rows are returned only when there is none.
pub fn read_balances_csv<R: Read>(
    input: R,
    country: phonenumber::country::Id,
) -> Result<Vec<ImportRow>, Vec<RowProblem>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Err(vec![problem(
                1,
                "-",
                format!("cannot read the header: {e}"),
            )])
        }
    };
    let mut col: HashMap<&str, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().trim_start_matches('\u{feff}');
        match COLUMNS.iter().find(|c| **c == name) {
            Some(c) if col.contains_key(c) => problems.push(problem(1, name, "column named twice")),
            Some(c) => {
                col.insert(c, i);
            }
            None => problems.push(problem(
                1,
                name,
                format!("unknown column; the header is {}", COLUMNS.join(",")),
            )),
        }
    }
    for required in &COLUMNS[..5] {
        if !col.contains_key(required) {
            problems.push(problem(
                1,
                required,
                format!(
                    "missing column; the header must be {}[,external_id]",
                    COLUMNS[..5].join(",")
                ),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut rows = Vec::new();
    let mut seen: HashMap<(IdentityKind, String), u64> = HashMap::new();
    let mut seen_external: HashMap<String, u64> = HashMap::new();
    for record in rdr.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                problems.push(problem(line, "-", format!("not a CSV row: {e}")));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let field = |name: &str| {
            col.get(name)
                .and_then(|i| record.get(*i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let mut bad = false;
        let email = match field("email") {
            Some(raw) => match normalise_email(&raw) {
                Some(e) => Some(e),
                None => {
                    problems.push(problem(
                        line,
                        "email",
                        format!("{raw:?} is not an e-mail address"),
                    ));
                    bad = true;
                    None
                }
            },
            None => None,
        };
        let phone = match field("phone") {
            Some(raw) => match normalise_phone(&raw, country) {
                Some(p) => Some(p),
                None => {
                    problems.push(problem(
                        line,
                        "phone",
                        format!("{raw:?} is not a valid phone number"),
                    ));
                    bad = true;
                    None
                }
            },
            None => None,
        };
        if !bad && email.is_none() && phone.is_none() {
            problems.push(problem(
                line,
                "email",
                "missing identity: give an e-mail, a phone or both",
            ));
            bad = true;
        }
        let points = match field("points") {
            None => {
                problems.push(problem(line, "points", "missing"));
                bad = true;
                Points::ZERO
            }
            Some(raw) => match raw.parse::<i64>() {
                Ok(p) if p < 0 => {
                    problems.push(problem(line, "points", format!("{p} is negative")));
                    bad = true;
                    Points::ZERO
                }
                Ok(p) if p > MAX_POINTS => {
                    problems.push(problem(
                        line,
                        "points",
                        format!("{p} is more than {MAX_POINTS}"),
                    ));
                    bad = true;
                    Points::ZERO
                }
                Ok(p) => Points(p),
                Err(_) => {
                    problems.push(problem(
                        line,
                        "points",
                        format!("{raw:?} is not a whole number of points"),
                    ));
                    bad = true;
                    Points::ZERO
                }
            },
        };
        for (kind, column, value) in [
            (IdentityKind::Email, "email", &email),
            (IdentityKind::Phone, "phone", &phone),
        ] {
            if let Some(v) = value {
                if let Some(first) = seen.insert((kind, v.clone()), line) {
                    // Keep the first line as the reference for later duplicates.
                    seen.insert((kind, v.clone()), first);
                    problems.push(problem(
                        line,
                        column,
                        format!("duplicate identity: also on line {first}"),
                    ));
                    bad = true;
                }
            }
        }
        let external_id = field("external_id");
        if let Some(x) = &external_id {
            if let Some(first) = seen_external.get(x) {
                problems.push(problem(
                    line,
                    "external_id",
                    format!("duplicate: also on line {first}"),
                ));
                bad = true;
            } else {
                seen_external.insert(x.clone(), line);
            }
        }
        if !bad {
            rows.push(ImportRow {
                line,
                email,
                phone,
                first_name: field("first_name"),
                last_name: field("last_name"),
                points,
                external_id,
            });
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}

/// What importing one row did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The opening balance was posted.
    Posted {
        /// The member.
        member: MemberId,
        /// Whether the member was created by this row.
        created: bool,
        /// The posting (none for a zero balance).
        seq: Option<u64>,
    },
    /// An earlier run imported this row; nothing changed.
    AlreadyImported {
        /// The posting that did (none for a zero balance).
        seq: Option<u64>,
        /// Points it posted, when it differs from the file now.
        points_then: Option<Points>,
    },
}

impl Ledger {
    /// Import one checked row into `shop`: at most once per row identity.
    pub fn import_row(
        &self,
        shop: &ShopId,
        row: &ImportRow,
        policy: &LedgerPolicy,
        timezone: Tz,
        now: DateTime<Utc>,
    ) -> Result<ImportOutcome, LedgerError> {
        // Like `Ledger::transact`, but with no rewards catalogue: an import announces
        // nothing, not even "reward unlocked".
        let _w = self.gate.write();
        let r = (
            &*self.index,
            &self.members,
            &self.journal,
            &self.member_journal,
            &self.outbox,
        )
            .transaction(|(index, members, journal, member_journal, outbox)| {
                let tx = Tx::new(shop, index, members, journal, member_journal, outbox, &[]);
                let out = import(&tx, row, policy, timezone, now)?;
                tx.write_back()?;
                Ok(out)
            });
        let out = r?;
        if let ImportOutcome::AlreadyImported {
            seq: Some(seq),
            points_then,
        } = &out
        {
            if points_then.is_none() {
                // Compare what was posted then with the file now, for the report.
                let posted: Option<Posting> =
                    super::get_json(&self.journal, &keys::posting(shop, *seq))?;
                if let Some(p) = posted {
                    let then = p.member_available_delta() + p.member_pending_delta();
                    if then != row.points {
                        return Ok(ImportOutcome::AlreadyImported {
                            seq: Some(*seq),
                            points_then: Some(then),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

fn import(
    tx: &Tx<'_>,
    row: &ImportRow,
    policy: &LedgerPolicy,
    timezone: Tz,
    now: DateTime<Utc>,
) -> TxResult<ImportOutcome> {
    let key = row.key(tx.shop);
    let index_key = keys::api_idempotency(tx.shop, &key);
    if let Some(v) = tx.index.get(&index_key)? {
        let seq = <[u8; 8]>::try_from(v.as_ref())
            .ok()
            .map(u64::from_be_bytes)
            .filter(|s| *s != 0);
        return Ok(ImportOutcome::AlreadyImported {
            seq,
            points_then: None,
        });
    }
    let claims = row.claims();
    let (mut member, existed) = find_or_create_member(tx, &claims, now)?;
    fill_names(&mut member, row);
    let mut seq = None;
    if row.points.0 > 0 {
        let s = tx.next_seq()?;
        let mut lots = tx.lots(&member.id)?;
        let (credit, changes) = tx.credit(
            &member.id,
            &mut lots,
            s,
            Credit {
                amount: row.points,
                day: now.with_timezone(&timezone).date_naive(),
                pending_until: None,
                expires_at: policy.lot_expiry(now, timezone),
                earned_at: now,
            },
        )?;
        let posting = Posting {
            seq: s,
            shop: tx.shop.clone(),
            member: member.id.clone(),
            kind: PostingKind::Imported,
            entries: vec![
                Entry {
                    account: Account::Issued,
                    amount: -row.points,
                },
                credit,
            ],
            lots: changes,
            occurred_at: now,
            recorded_at: now,
            idempotency_key: key.clone(),
            order_id: None,
            explanation: Vec::new(),
            rules_version: None,
            cash_back: rust_decimal::Decimal::ZERO,
            actor: Some("import".into()),
            reason: Some(match &row.external_id {
                Some(x) => format!("opening balance imported (previous program id {x})"),
                None => "opening balance imported".into(),
            }),
            reward: None,
            shortfall: Points::ZERO,
        };
        // No `notify_posted`: imports text nobody (see `verify`).
        tx.post(&posting)?;
        tx.save_lots(&member.id, &lots)?;
        member.lifetime += row.points;
        seq = Some(s);
    }
    // The balance counts as activity, so inactivity expiry starts from the import.
    member.last_activity_at = Some(member.last_activity_at.map_or(now, |t| t.max(now)));
    member.updated_at = now;
    tx.save_member(&member)?;
    tx.index
        .insert(index_key, &seq.unwrap_or(0).to_be_bytes())?;
    Ok(ImportOutcome::Posted {
        member: member.id.clone(),
        created: !existed,
        seq,
    })
}

fn fill_names(member: &mut Member, row: &ImportRow) {
    if member.first_name.is_none() {
        member.first_name = row.first_name.clone();
    }
    if member.last_name.is_none() {
        member.last_name = row.last_name.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<ImportRow>, Vec<RowProblem>> {
        read_balances_csv(text.as_bytes(), phonenumber::country::Id::US)
    }

    #[test]
    fn good_rows_are_normalised() {
        let rows = read(
            "email,phone,first_name,last_name,points,external_id\n\
             Ada@Example.com,,Ada,Lovelace,120,old-1\n\
             ,(514) 555-0142,Bob,,0,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].email.as_deref(), Some("ada@example.com"));
        assert_eq!(rows[0].points, Points(120));
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].phone.as_deref(), Some("+15145550142"));
        assert_eq!(rows[1].external_id, None);
        // The key depends on the normalised identity only.
        let again =
            read("email,phone,first_name,last_name,points\nada@example.com,,A,L,5\n").unwrap();
        let shop = ShopId::new("demo").unwrap();
        assert_eq!(rows[0].key(&shop), again[0].key(&shop));
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line_and_column() {
        let e = read(
            "email,phone,first_name,last_name,points\n\
             ada@example.com,,Ada,,10\n\
             ,,Nobody,,5\n\
             not-an-email,,X,,5\n\
             ,12,Y,,5\n\
             b@example.com,,B,,1.5\n\
             c@example.com,,C,,-3\n\
             ADA@example.com,,Ada,,7\n",
        )
        .unwrap_err();
        let got: Vec<(u64, &str)> = e.iter().map(|p| (p.line, p.column.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (3, "email"),
                (4, "email"),
                (5, "phone"),
                (6, "points"),
                (7, "points"),
                (8, "email")
            ],
            "{e:?}"
        );
        assert!(e[5].reason.contains("line 2"), "{}", e[5]);
    }

    #[test]
    fn the_header_is_required() {
        let e = read("ada@example.com,,Ada,,10\n").unwrap_err();
        assert_eq!(e[0].line, 1);
        let e = read("email,phone,first_name,points\n").unwrap_err();
        assert!(e.iter().any(|p| p.column == "last_name"), "{e:?}");
    }
}

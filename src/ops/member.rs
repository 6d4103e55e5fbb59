//! `loyaltyd member find|show|adjust|redeem` and `loyaltyd backup`: commands that act
//! on a running daemon through its admin API.

use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use super::client::{Client, Target};
use crate::cli::{ApiArgs, MemberWhat};

fn client(api: &ApiArgs) -> anyhow::Result<Client> {
    Client::new(Target::resolve(
        &api.config,
        api.url.clone(),
        api.token.clone(),
    )?)
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The key to send: the one given, or a fresh one, printed so a retry can reuse it.
fn idempotency_key(given: Option<String>) -> String {
    let key = given.unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
    eprintln!("Idempotency-Key: {key} (run again with --idempotency-key {key} to retry safely)");
    key
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn day(v: &Value) -> String {
    v.as_str()
        .map(|s| s.get(..10).unwrap_or(s).to_string())
        .unwrap_or_else(|| "-".into())
}

/// The member summary: id, name, contacts, tier and balances.
fn summary(m: &Value) -> String {
    let name = [m["first_name"].as_str(), m["last_name"].as_str()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "member {}{}\n  e-mail {}, phone {}\n  tier {}\n  points: {} available, {} pending, {} lifetime",
        text(&m["id"]),
        if name.is_empty() {
            String::new()
        } else {
            format!(" ({name})")
        },
        text(&m["email"]),
        text(&m["phone"]),
        m["tier"].as_str().unwrap_or("none"),
        text(&m["points"]["available"]),
        text(&m["points"]["pending"]),
        text(&m["points"]["lifetime"]),
    )
}

fn show(m: &Value, ledger: &Value) -> String {
    let mut out = summary(m);
    let lots = m["lots"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("\n  lots ({}):", lots.len()));
    for l in &lots {
        let mut line = format!(
            "\n    lot {:<6} {:>8} points  earned {}",
            text(&l["lot"]),
            text(&l["points"]),
            day(&l["earned_at"])
        );
        if !l["pending_until"].is_null() {
            line.push_str(&format!(", pending until {}", day(&l["pending_until"])));
        }
        line.push_str(&match l["expires_at"].as_str() {
            Some(_) => format!(", expires {}", day(&l["expires_at"])),
            None => ", no expiry".into(),
        });
        out.push_str(&line);
    }
    let entries = ledger["entries"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("\n  last postings ({}):", entries.len()));
    for e in &entries {
        let points = e["points"].as_i64().unwrap_or(0);
        let mut line = format!(
            "\n    #{:<6} {}  {:<17} {:>+8}",
            text(&e["posting_id"]),
            day(&e["recorded_at"]),
            text(&e["kind"]),
            points
        );
        for (label, key) in [
            ("order", "order_id"),
            ("reward", "reward"),
            ("by", "actor"),
            ("reason", "reason"),
        ] {
            if let Some(v) = e[key].as_str() {
                line.push_str(&format!("  {label} {v}"));
            }
        }
        for c in e["explanation"].as_array().into_iter().flatten() {
            line.push_str(&format!(
                "\n             {} {:+}: {}",
                text(&c["rule_id"]),
                c["points"].as_i64().unwrap_or(0),
                text(&c["detail"])
            ));
        }
        out.push_str(&line);
    }
    out
}

fn posted(a: &super::client::Answer, what: &str) -> String {
    let b = &a.body;
    format!(
        "{what} {} points for member {} (posting #{}); balance {} available, {} pending{}",
        text(&b["points"]),
        text(&b["member_id"]),
        text(&b["posting_id"]),
        text(&b["balance"]["available"]),
        text(&b["balance"]["pending"]),
        if a.replayed {
            "\n(this key was used before: that first answer is shown, nothing new was posted)"
        } else {
            ""
        }
    )
}

/// Run `loyaltyd member …`.
pub fn run(what: MemberWhat) -> anyhow::Result<()> {
    match what {
        MemberWhat::Find {
            api,
            shop,
            email,
            phone,
            shopify_customer_id,
            square_customer_id,
            json,
        } => {
            let c = client(&api)?;
            let (k, v) = [
                ("email", email),
                ("phone", phone),
                ("shopify_customer_id", shopify_customer_id),
                ("square_customer_id", square_customer_id),
            ]
            .into_iter()
            .find_map(|(k, v)| v.map(|v| (k, v)))
            .context("give --email, --phone, --shopify-customer-id or --square-customer-id")?;
            let m = c.get(
                &format!("/v1/shops/{}/members/lookup", seg(&shop)),
                &[(k, v.as_str())],
            )?;
            if json {
                print_json(&m)
            } else {
                println!("{}", summary(&m));
                Ok(())
            }
        }
        MemberWhat::Show {
            api,
            shop,
            id,
            postings,
            json,
        } => {
            let c = client(&api)?;
            let base = format!("/v1/shops/{}/members/{}", seg(&shop), seg(&id));
            let m = c.get(&base, &[])?;
            let limit = postings.clamp(1, 1000).to_string();
            let l = c.get(&format!("{base}/ledger"), &[("limit", limit.as_str())])?;
            if json {
                print_json(&json!({"member": m, "ledger": l}))
            } else {
                println!("{}", show(&m, &l));
                Ok(())
            }
        }
        MemberWhat::Adjust {
            api,
            shop,
            id,
            points,
            reason,
            idempotency_key: key,
            json,
        } => {
            let c = client(&api)?;
            let key = idempotency_key(key);
            let a = c.post(
                &format!("/v1/shops/{}/members/{}/adjustments", seg(&shop), seg(&id)),
                &key,
                &json!({"points": points, "reason": reason}),
            )?;
            if json {
                print_json(&a.body)
            } else {
                println!("{}", posted(&a, "adjusted"));
                Ok(())
            }
        }
        MemberWhat::Redeem {
            api,
            shop,
            id,
            points,
            reward,
            order_id,
            idempotency_key: key,
            json,
        } => {
            let c = client(&api)?;
            let key = idempotency_key(key);
            let mut body = match (points, reward) {
                (Some(p), _) => json!({"points": p}),
                (None, Some(r)) => json!({"reward": r}),
                (None, None) => anyhow::bail!("give --points or --reward"),
            };
            if let Some(o) = order_id {
                body["order_id"] = json!(o);
            }
            let a = c.post(
                &format!("/v1/shops/{}/members/{}/redemptions", seg(&shop), seg(&id)),
                &key,
                &body,
            )?;
            if json {
                print_json(&a.body)
            } else {
                println!("{}", posted(&a, "redeemed"));
                Ok(())
            }
        }
    }
}

/// Run `loyaltyd backup --out FILE`: download to `FILE.partial`, check it, rename.
pub fn backup(api: ApiArgs, out: &Path) -> anyhow::Result<()> {
    let c = client(&api)?;
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut progress = super::progress::Progress::new("backup bytes received", None);
    let result = c.download("/v1/backup", &mut w, |n| progress.inc(n));
    progress.finish();
    let result = result.and_then(|n| {
        use std::io::Write;
        w.flush()?;
        w.get_ref().sync_all()?;
        let f = std::fs::File::open(&partial)?;
        let checked = super::backup::read(std::io::BufReader::new(f), |_| Ok(()))?;
        Ok((n, checked))
    });
    match result {
        Ok((bytes, checked)) => {
            std::fs::rename(&partial, out)
                .with_context(|| format!("cannot rename to {}", out.display()))?;
            println!(
                "backup written to {}: {} records, {bytes} bytes, sha256 {}",
                out.display(),
                checked.records,
                checked.sha256
            );
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e.context("backup failed; nothing was written"))
        }
    }
}

//! The sent and acked logs: one line per webhook, appended with a single `write(2)`
//! per line and no user-space buffer, so a line is in the kernel (and survives any
//! crash of the daemon) as soon as the call returns.
//!
//! - acked: `webhook_id order_id customer_id expected_points`
//! - sent:  `webhook_id order_id customer_id expected_points body_base64 signature`

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use base64::Engine;
use bytes::Bytes;

use crate::gen::Webhook;

/// An append-only line log.
#[derive(Debug)]
pub struct LineLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl LineLog {
    pub fn open(path: &Path) -> anyhow::Result<LineLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(LineLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    fn write_line(&self, line: &str) -> anyhow::Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(line.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    pub fn acked(&self, w: &Webhook) -> anyhow::Result<()> {
        self.write_line(&format!(
            "{} {} {} {}\n",
            w.id, w.order_id, w.customer_id, w.expected_points
        ))
    }

    pub fn sent(&self, w: &Webhook) -> anyhow::Result<()> {
        self.write_line(&format!(
            "{} {} {} {} {} {}\n",
            w.id,
            w.order_id,
            w.customer_id,
            w.expected_points,
            base64::engine::general_purpose::STANDARD.encode(&w.body),
            w.signature
        ))
    }
}

/// One acked line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub id: String,
    pub order_id: u64,
    pub customer_id: u64,
    pub expected_points: u64,
}

fn num(field: Option<&str>, what: &str, path: &Path, n: usize) -> anyhow::Result<u64> {
    field
        .with_context(|| format!("{}:{n}: missing {what}", path.display()))?
        .parse()
        .with_context(|| format!("{}:{n}: bad {what}", path.display()))
}

/// Read an acked log. A torn last line (no newline) is reported, not skipped.
pub fn read_acked(path: &Path) -> anyhow::Result<Vec<Acked>> {
    let mut out = Vec::new();
    if !path.exists() {
        return Ok(out);
    }
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split(' ');
        let id = it
            .next()
            .filter(|s| !s.is_empty())
            .with_context(|| format!("{}:{}: missing webhook id", path.display(), i + 1))?
            .to_string();
        out.push(Acked {
            id,
            order_id: num(it.next(), "order id", path, i + 1)?,
            customer_id: num(it.next(), "customer id", path, i + 1)?,
            expected_points: num(it.next(), "points", path, i + 1)?,
        });
    }
    Ok(out)
}

/// Read a sent log back into webhooks (body and signature as sent).
pub fn read_sent(path: &Path) -> anyhow::Result<Vec<Webhook>> {
    let mut out = Vec::new();
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let mut it = line.split(' ');
        let id = it
            .next()
            .filter(|s| !s.is_empty())
            .with_context(|| format!("{}:{n}: missing webhook id", path.display()))?
            .to_string();
        let order_id = num(it.next(), "order id", path, n)?;
        let customer_id = num(it.next(), "customer id", path, n)?;
        let expected_points = num(it.next(), "points", path, n)?;
        let body = base64::engine::general_purpose::STANDARD
            .decode(
                it.next()
                    .with_context(|| format!("{}:{n}: missing body", path.display()))?,
            )
            .with_context(|| format!("{}:{n}: body is not base64", path.display()))?;
        let signature = it
            .next()
            .with_context(|| format!("{}:{n}: missing signature", path.display()))?
            .to_string();
        let w = Webhook {
            id: id.clone(),
            order_id,
            customer_id,
            expected_points,
            body: Bytes::from(body),
            signature,
        };
        if let Some(&j) = seen.get(&id) {
            let prev: &Webhook = &out[j];
            if prev.body != w.body {
                bail!(
                    "{}:{n}: webhook id {id} logged twice with different bodies",
                    path.display()
                );
            }
            continue;
        }
        seen.insert(id, out.len());
        out.push(w);
    }
    Ok(out)
}

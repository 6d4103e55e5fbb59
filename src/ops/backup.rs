//! Backups of a running daemon and restores into an empty data directory.
//!
//! # The backup file (version 1)
//! JSON lines, UTF-8, one object per line:
//! 1. a header: `{"format":"loyaltyd-backup","version":1,"created_at":"<RFC 3339>","trees":<n>}`;
//! 2. one line per stored key: `{"t":"<tree name>","k":"<key, base64>","v":"<value, base64>"}`
//!    (every sled tree, the default one included, in key order);
//! 3. a trailer: `{"end":true,"records":<n>,"sha256":"<hex>"}`, where `sha256` covers
//!    every byte of the file before the trailer line.
//!
//! # Consistency
//! The ledger's trees are copied while [`Ledger::pause_writes`] holds every ledger write
//! back, so the copy contains whole transactions only. The notifier's delivery trees
//! (`outbox_state`, `outbox_sent`, `deadletters`, `sms_suppressed`, `inbound_seen`) are
//! written without that gate and may be a moment newer or older than the ledger in
//! the copy: after a restore, at worst a notification is sent again.

use std::io::{BufRead, Write};
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ledger::Ledger;

/// The `format` of the header line.
pub const FORMAT: &str = "loyaltyd-backup";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Tree name.
    pub tree: Vec<u8>,
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    created_at: chrono::DateTime<chrono::Utc>,
    trees: usize,
}

#[derive(Serialize, Deserialize)]
struct Line {
    t: String,
    k: String,
    v: String,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    end: bool,
    records: u64,
    sha256: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The notifier's own trees, copied last (see [`snapshot`]).
const NOTIFIER_TREES: [&[u8]; 5] = [
    crate::notify::outbox::SENT_TREE.as_bytes(),
    crate::notify::delivery::DEAD_TREE.as_bytes(),
    crate::notify::delivery::STATE_TREE.as_bytes(),
    crate::notify::delivery::SUPPRESSED_TREE.as_bytes(),
    crate::notify::delivery::SEEN_TREE.as_bytes(),
];

/// Copy every tree of the ledger's database while ledger writes are paused.
/// Blocking: call from a blocking thread.
pub fn snapshot(ledger: &Ledger) -> Result<Vec<Record>, sled::Error> {
    let db = ledger.db();
    let _paused = ledger.pause_writes();
    let mut out = Vec::new();
    // The notifier moves a message from the ledger's `outbox` to `outbox_sent` (or
    // `deadletters`) without the writer gate. Copying its trees AFTER the ledger's
    // means a message moved during the copy is in both copies (sent again after a
    // restore, at worst), never in neither.
    let mut names = db.tree_names();
    names.sort_by_key(|n| (NOTIFIER_TREES.contains(&n.as_ref()), n.clone()));
    for name in names {
        let tree = db.open_tree(&name)?;
        for item in tree.iter() {
            let (k, v) = item?;
            out.push(Record {
                tree: name.to_vec(),
                key: k.to_vec(),
                value: v.to_vec(),
            });
        }
    }
    Ok(out)
}

/// Writes the backup format, hashing as it goes.
pub struct Encoder<W: Write> {
    out: W,
    hash: Sha256,
    records: u64,
}

impl<W: Write> Encoder<W> {
    /// Start a backup: writes the header.
    pub fn new(mut out: W, trees: usize) -> std::io::Result<Encoder<W>> {
        let mut hash = Sha256::new();
        let mut line = serde_json::to_vec(&Header {
            format: FORMAT.into(),
            version: VERSION,
            created_at: chrono::Utc::now(),
            trees,
        })?;
        line.push(b'\n');
        hash.update(&line);
        out.write_all(&line)?;
        Ok(Encoder {
            out,
            hash,
            records: 0,
        })
    }

    /// One record.
    pub fn record(&mut self, r: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&Line {
            t: b64().encode(&r.tree),
            k: b64().encode(&r.key),
            v: b64().encode(&r.value),
        })?;
        line.push(b'\n');
        self.hash.update(&line);
        self.records += 1;
        self.out.write_all(&line)
    }

    /// The trailer with the count and checksum; returns the writer and the checksum.
    pub fn finish(mut self) -> std::io::Result<(W, String)> {
        let sha = format!("{:x}", self.hash.finalize());
        let mut line = serde_json::to_vec(&Trailer {
            end: true,
            records: self.records,
            sha256: sha.clone(),
        })?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.out.flush()?;
        Ok((self.out, sha))
    }
}

/// What a backup file holds, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Records in it.
    pub records: u64,
    /// Its checksum.
    pub sha256: String,
    /// When it was taken.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Read a backup, calling `each` for every record, and check header, count and
/// checksum. `each` sees records before the checksum is known: check first with a
/// no-op `each`, then read again to apply.
pub fn read<R: BufRead>(
    input: R,
    mut each: impl FnMut(Record) -> anyhow::Result<()>,
) -> anyhow::Result<Checked> {
    let mut hash = Sha256::new();
    let mut lines = input.split(b'\n');
    let first = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("the file is empty, not a loyaltyd backup"))??;
    let header: Header = serde_json::from_slice(&first)
        .ok()
        .filter(|h: &Header| h.format == FORMAT)
        .ok_or_else(|| anyhow::anyhow!("not a loyaltyd backup (no loyaltyd-backup header)"))?;
    if header.version != VERSION {
        anyhow::bail!(
            "backup format version {} is not supported (this build reads {VERSION})",
            header.version
        );
    }
    hash.update(&first);
    hash.update(b"\n");
    for (n, line) in lines.enumerate() {
        let line = line?;
        let lineno = n + 2;
        if let Ok(t) = serde_json::from_slice::<Trailer>(&line) {
            // Every line between the header and the trailer is one record.
            let records = n as u64;
            let sha = format!("{:x}", hash.finalize());
            if t.records != records {
                anyhow::bail!(
                    "the backup is damaged: the trailer counts {} records, the file has {records}",
                    t.records
                );
            }
            if t.sha256 != sha {
                anyhow::bail!(
                    "the backup is damaged: checksum mismatch (trailer {}, content {sha})",
                    t.sha256
                );
            }
            return Ok(Checked {
                records,
                sha256: sha,
                created_at: header.created_at,
            });
        }
        let l: Line = serde_json::from_slice(&line)
            .map_err(|e| anyhow::anyhow!("the backup is damaged at line {lineno}: {e}"))?;
        let decode = |s: &str| {
            b64()
                .decode(s)
                .map_err(|e| anyhow::anyhow!("the backup is damaged at line {lineno}: {e}"))
        };
        let r = Record {
            tree: decode(&l.t)?,
            key: decode(&l.k)?,
            value: decode(&l.v)?,
        };
        hash.update(&line);
        hash.update(b"\n");
        each(r)?;
    }
    anyhow::bail!("the backup is incomplete: no trailer (was the copy cut short?)")
}

/// Why a data directory cannot be restored into, if it cannot.
pub fn check_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => anyhow::bail!("cannot read the data directory {}: {e}", dir.display()),
        Ok(mut entries) => {
            if entries.next().is_some() {
                anyhow::bail!(
                    "refusing to restore into {}: the data directory is not empty. Restore \
                     into a new or empty directory (set storage.path), or move the existing \
                     data away first",
                    dir.display()
                );
            }
            Ok(())
        }
    }
}

/// Restore `file` into the empty directory `dir`: check the whole file first, then
/// write every record and flush. `progress` is called with the records written.
pub fn restore(file: &Path, dir: &Path, mut progress: impl FnMut(u64)) -> anyhow::Result<Checked> {
    check_empty(dir)?;
    let open = || -> anyhow::Result<std::io::BufReader<std::fs::File>> {
        Ok(std::io::BufReader::new(std::fs::File::open(file).map_err(
            |e| anyhow::anyhow!("cannot read {}: {e}", file.display()),
        )?))
    };
    let checked = read(open()?, |_| Ok(()))?;
    let db = sled::Config::new()
        .path(dir)
        .open()
        .map_err(|e| anyhow::anyhow!("cannot create the database in {}: {e}", dir.display()))?;
    let mut batch: Option<(Vec<u8>, sled::Batch, usize)> = None;
    let apply = |db: &sled::Db, b: (Vec<u8>, sled::Batch, usize)| -> anyhow::Result<()> {
        db.open_tree(&b.0)?.apply_batch(b.1)?;
        Ok(())
    };
    let again = read(open()?, |r| {
        let same = matches!(&batch, Some((t, _, n)) if *t == r.tree && *n < 10_000);
        if !same {
            if let Some(b) = batch.take() {
                apply(&db, b)?;
            }
            batch = Some((r.tree.clone(), sled::Batch::default(), 0));
        }
        if let Some((_, b, n)) = batch.as_mut() {
            b.insert(r.key, r.value);
            *n += 1;
        }
        progress(1);
        Ok(())
    })?;
    if let Some(b) = batch.take() {
        apply(&db, b)?;
    }
    if again != checked {
        anyhow::bail!("the backup changed while it was being restored");
    }
    db.flush()?;
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut e = Encoder::new(Vec::new(), 1).unwrap();
        for i in 0..3u8 {
            e.record(&Record {
                tree: b"journal".to_vec(),
                key: vec![i],
                value: vec![b'x', i, b'\n'],
            })
            .unwrap();
        }
        e.finish().unwrap().0
    }

    #[test]
    fn a_backup_reads_back_with_its_checksum() {
        let mut seen = Vec::new();
        let c = read(&sample()[..], |r| {
            seen.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(c.records, 3);
        assert_eq!(seen[2].value, vec![b'x', 2, b'\n']);
    }

    #[test]
    fn damage_and_truncation_are_detected() {
        let good = sample();
        let text = String::from_utf8(good.clone()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        // Swap two records: same count, other content.
        lines.swap(1, 2);
        let swapped = lines.join("\n") + "\n";
        let e = read(swapped.as_bytes(), |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        let cut = &good[..good.len() - 60];
        assert!(read(cut, |_| Ok(())).is_err());
        assert!(read(&b"hello\n"[..], |_| Ok(())).is_err());
    }
}

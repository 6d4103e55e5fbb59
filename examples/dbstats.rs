//! Diagnostic: what a stopped daemon's sled database holds, per tree (and, in the
//! `index` tree, per key kind), and what reading it all costs the process in memory.
//!
//!   cargo run --release --example dbstats -- <data dir> [cache MiB]
//!
//! Prints one line per tree/kind: keys, key bytes, value bytes; then the directory's
//! size on disk and VmRSS after opening and after reading everything. Run it on a COPY
//! or on a stopped daemon's data: sled takes an exclusive lock on the directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Default)]
struct Tally {
    keys: u64,
    key_bytes: u64,
    value_bytes: u64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes the allocator has handed out and not had back (glibc `mallinfo2`): the heap
/// really in use, as opposed to RSS, which also counts freed memory malloc kept.
fn heap_in_use_kib() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    ((m.uordblks + m.hblkhd) / 1024) as u64
}

/// Give freed heap back to the kernel, so RSS afterwards is what is still in use.
fn trim() {
    // SAFETY: malloc_trim only releases free memory.
    unsafe { libc::malloc_trim(0) };
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: dbstats <data dir> [cache MiB]")?);
    let cache_mib: u64 = match args.next() {
        Some(s) => s.parse()?,
        None => 64,
    };
    let rss_start = rss_kib();
    // The same configuration as the daemon (src/ledger/mod.rs), so memory compares.
    let db = sled::Config::new()
        .path(&path)
        .cache_capacity(cache_mib * 1024 * 1024)
        .open()?;
    let rss_open = rss_kib();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut names = db.tree_names();
    names.sort();
    for name in names {
        let tree = db.open_tree(&name)?;
        let tree_name = String::from_utf8_lossy(&name).into_owned();
        for item in tree.iter() {
            let (k, v) = item?;
            // The `index` tree mixes key kinds; its first byte says which (keys.rs).
            let label = if tree_name == "index" {
                format!("index/{}", k.first().map(|b| *b as char).unwrap_or('?'))
            } else {
                tree_name.clone()
            };
            for t in [tallies.entry(label).or_default(), &mut total] {
                t.keys += 1;
                t.key_bytes += k.len() as u64;
                t.value_bytes += v.len() as u64;
            }
        }
    }
    let rss_read = rss_kib();
    let heap_read = heap_in_use_kib();
    trim();
    let rss_trimmed = rss_kib();
    println!(
        "{:<24} {:>10} {:>12} {:>14} {:>10}",
        "tree", "keys", "key_bytes", "value_bytes", "avg_value"
    );
    for (name, t) in tallies
        .iter()
        .chain(std::iter::once((&"TOTAL".to_string(), &total)))
    {
        println!(
            "{:<24} {:>10} {:>12} {:>14} {:>10}",
            name,
            t.keys,
            t.key_bytes,
            t.value_bytes,
            t.value_bytes.checked_div(t.keys).unwrap_or(0)
        );
    }
    let on_disk = dir_bytes(&path);
    println!(
        "DBSTATS {{\"keys\":{},\"live_bytes\":{},\"dir_bytes\":{},\"size_on_disk\":{},\"cache_mib\":{},\"rss_kib_start\":{},\"rss_kib_open\":{},\"rss_kib_after_read\":{},\"heap_in_use_kib\":{},\"rss_kib_after_trim\":{}}}",
        total.keys,
        total.key_bytes + total.value_bytes,
        on_disk,
        db.size_on_disk()?,
        cache_mib,
        rss_start,
        rss_open,
        rss_read,
        heap_read,
        rss_trimmed
    );
    Ok(())
}

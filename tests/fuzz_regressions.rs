//! Every input a fuzz target ever crashed on, replayed under `cargo test` through the
//! same function the target calls, so crashes found stay fixed.
//!
//! The functions live in `fuzz/src/lib.rs`, compiled here as a module: the fuzz crate is
//! not a workspace member (cargo-fuzz builds it on its own). Saved inputs are in
//! `fuzz/regressions/<target>/`, one file each (see docs/fuzzing.md). The seed corpora
//! (`fuzz/corpus/<target>/`) are replayed too: they are the fixtures, and must never
//! crash either.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str, target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let files = files(&dir);
    for file in &files {
        let data = std::fs::read(file).expect("readable input");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} panics again (replay: cargo fuzz run --sanitizer none {target} {})",
            file.display(),
            file.display()
        );
    }
    files.len()
}

#[test]
fn every_saved_crash_stays_fixed() {
    for (target, run) in harness::TARGETS {
        replay("regressions", target, *run);
    }
}

#[test]
fn every_seed_input_runs_clean() {
    for (target, run) in harness::TARGETS {
        let n = replay("corpus", target, *run);
        assert!(n > 0, "fuzz/corpus/{target} has no seed inputs");
    }
}

#[test]
fn every_regression_directory_names_a_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for dir in std::fs::read_dir(&root).into_iter().flatten() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                harness::TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/regressions/{name} is not a fuzz target: its inputs would never be replayed"
            );
        }
    }
}

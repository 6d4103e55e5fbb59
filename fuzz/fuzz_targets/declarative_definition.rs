#![no_main]
//! See `fuzz/src/lib.rs` and docs/fuzzing.md for what this target does and its input format.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| loyaltyd_fuzz::declarative_definition(data));

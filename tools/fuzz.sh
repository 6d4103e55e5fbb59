#!/usr/bin/env bash
# Fuzz every target in fuzz/ for SECONDS each (default 60), starting from its checked-in
# seed corpus; fail if any target crashes. See docs/fuzzing.md.
#
#   tools/fuzz.sh            # 60 s per target
#   tools/fuzz.sh 600        # a longer run
#   TARGETS="rules_file config_file" tools/fuzz.sh 30
#
# Works on the stable toolchain: libFuzzer needs only the coverage instrumentation, so
# the targets are built with --sanitizer none (no ASan, which needs nightly). New corpus
# entries go to fuzz/work/corpus/<target> (not checked in), so the seeds stay as they
# are; a crash leaves its input in fuzz/artifacts/<target>/ and the libFuzzer log in
# fuzz/work/<target>.log, and the script exits 1 after running the other targets.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
ALL_TARGETS="shopify_webhook square_webhook woocommerce_webhook declarative_definition rules_file config_file"
TARGETS="${TARGETS:-$ALL_TARGETS}"
# Release build with debug assertions and overflow checks (cargo-fuzz's default): about
# 8 CPU-minutes from scratch, then ~50,000 executions a second. A --dev build costs less
# than half the CPU but fuzzes ~100 times slower, so it is not worth it even for CI.
FUZZ_FLAGS=(--sanitizer none)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi

echo "== building the fuzz targets"
cargo fuzz build "${FUZZ_FLAGS[@]}"

mkdir -p fuzz/work
failed=()
for t in $TARGETS; do
    mkdir -p "fuzz/work/corpus/$t"
    log="fuzz/work/$t.log"
    echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
    # -timeout: one input taking 10 s is a hang, and a failure.
    if cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "fuzz/work/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
        grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec' "$log" || true
    else
        echo "!! $t failed (log: $log):"
        grep -E -A20 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -40 || tail -40 "$log"
        ls "fuzz/artifacts/$t" 2>/dev/null | sed "s|^|   fuzz/artifacts/$t/|" || true
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "== fuzzing found crashes in: ${failed[*]}"
    echo "   minimise with: cargo fuzz tmin --sanitizer none <target> <artifact>"
    echo "   then save it under fuzz/regressions/<target>/ and fix (docs/fuzzing.md)"
    exit 1
fi
echo "== fuzzing: no crashes in ${SECONDS_PER_TARGET}s per target"

#!/usr/bin/env bash
# Restart time on an existing database (reliability reference §14: with 1M journal
# entries, restart to ready in under 10 s). Times `loyaltyd serve` from exec to /readyz
# answering 200, ROUNDS times after a clean stop (SIGTERM) and ROUNDS times after a
# SIGKILL (with SECRET set, the kill lands while loadgen is sending signed sales, so
# sled recovers a log with writes in flight). Prints each time, the medians, and RSS once
# ready; then runs `loyaltyd verify` on the data and times it.
#
#   CONFIG=/tmp/big/cfg.toml SECRET=big-secret ROUNDS=5 NO_BUILD=1 tools/restart-time.sh
#
# The config's storage must hold the data already (docs/hardening.md, "Restart with a
# million postings", says how it was built). Knobs: CONFIG (required), ROUNDS (5),
# SECRET (the config's Shopify webhook secret, for kills under load), NO_BUILD=1,
# LOYALTYD_BIN / LOADGEN_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
TOOL=restart-time
. tools/lib.sh
[ -n "${CONFIG:-}" ] && [ -f "$CONFIG" ] || die "set CONFIG to the daemon's config file"
LISTEN=$(sed -n 's/^listen *= *"\(.*\)".*/\1/p' "$CONFIG" | head -1)
[ -n "$LISTEN" ] || die "no [server] listen in $CONFIG"
BASE="http://$LISTEN"

build_release -p loyaltyd -p loyaltyd-loadgen
need_bins "$LOYALTYD"
[ -z "${SECRET:-}" ] || need_bins "$LOADGEN"
ports_free "${LISTEN##*:}"

DAEMON_PID=""
LOAD_PID=""
STOP_AT_EXIT="LOAD_PID DAEMON_PID"
make_tmp

now_ms() { date +%s%3N; }

# Start the daemon; sets READY_MS to the milliseconds from exec to /readyz 200.
start_ready() {
    local t0
    t0=$(now_ms)
    RUST_LOG=warn "$LOYALTYD" serve --config "$CONFIG" >>"$TMP/daemon.out" 2>>"$TMP/daemon.log" &
    DAEMON_PID=$!
    for _ in $(seq 1 6000); do
        if curl -fsS -o /dev/null --max-time 1 "$BASE/readyz" 2>/dev/null; then
            READY_MS=$(($(now_ms) - t0))
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.02
    done
    tail -5 "$TMP/daemon.log" >&2
    die "the daemon did not become ready"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# A clean start first, so that both series start from a database a clean stop left.
start_ready
stop_pid "$DAEMON_PID"
DAEMON_PID=""

: >"$TMP/term"
: >"$TMP/kill"
for i in $(seq 1 "$ROUNDS"); do
    start_ready
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
    echo "$READY_MS" >>"$TMP/term"
    printf 'RESTART after=term round=%s ready_ms=%s rss_kib=%s\n' "$i" "$READY_MS" "$rss"
    if [ -n "${SECRET:-}" ]; then
        "$LOADGEN" run --url "$BASE" --secret "$SECRET" --members 2000 --rate 500 \
            --concurrency 16 --duration 10 --id-prefix "restart$i" >/dev/null 2>&1 &
        LOAD_PID=$!
        sleep 3
    fi
    kill -9 "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    [ -z "$LOAD_PID" ] || { stop_pid "$LOAD_PID"; LOAD_PID=""; }

    start_ready
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
    echo "$READY_MS" >>"$TMP/kill"
    printf 'RESTART after=kill round=%s ready_ms=%s rss_kib=%s\n' "$i" "$READY_MS" "$rss"
    stop_pid "$DAEMON_PID"
    DAEMON_PID=""
done
echo "RESTART median_ready_ms after_term=$(median <"$TMP/term") after_kill=$(median <"$TMP/kill") rounds=$ROUNDS"

t0=$(now_ms)
"$LOYALTYD" verify --config "$CONFIG" | tail -3
echo "RESTART verify_ms=$(($(now_ms) - t0))"

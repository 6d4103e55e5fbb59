#!/usr/bin/env bash
# Crash test for the ledger: "every sale counted exactly once, acknowledged only when
# it is on disk".
#
# Builds release, writes a temporary config (one shop `demo`, USD, 1 point per unit,
# storage in a temp dir, listening on 127.0.0.1:$PORT), then ROUNDS times: start
# loyaltyd, wait for /healthz, run loadgen against it with --sent-log/--acked-log,
# sleep a random 0.5–3 s, `kill -9` the daemon, stop that round's loadgen. Finally it
# restarts the daemon once more and runs `loadgen check`, which
#   - reads every customer's points.available through the admin API and requires it to
#     be >= the sum of that customer's acked webhooks (less = a lost sale) and equal to
#     the sum of the webhooks that turn out to be applied (more = applied twice);
#   - re-sends every SENT webhook (same id, same body): acked ones must answer 200
#     "duplicate": true; unacked ones may be duplicates (committed, ack lost in the
#     crash) or newly applied (never committed);
#   - requires every balance to then equal exactly the sum of all sent orders.
# If `loyaltyd verify` exists it is run on the stopped daemon (after the last kill and
# after the final clean stop) and must exit 0.
#
# Environment knobs: ROUNDS (10), PORT (18181), MEMBERS (200), CONCURRENCY (32),
# SEED (random), MIN_MS/MAX_MS (500/3000, time before the kill), KEEP=1 keeps the temp
# dir, NO_BUILD=1 skips the build, LOYALTYD_BIN / LOADGEN_BIN override the binaries.
# All traffic goes to 127.0.0.1 only; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-10}
PORT=${PORT:-18181}
MEMBERS=${MEMBERS:-200}
CONCURRENCY=${CONCURRENCY:-32}
SEED=${SEED:-$((RANDOM * 32768 + RANDOM))}
MIN_MS=${MIN_MS:-500}
MAX_MS=${MAX_MS:-3000}
PREFIX=crash
ADMIN_TOKEN=crash-admin-token
SECRET=crash-shopify-secret
BASE="http://127.0.0.1:$PORT"
TOOL=crash-test
. tools/lib.sh

build_release -p loyaltyd -p loyaltyd-loadgen
need_bins "$LOYALTYD" "$LOADGEN"
ports_free "$PORT"

DAEMON_PID=""
LOADGEN_PID=""
STOP_AT_EXIT="LOADGEN_PID DAEMON_PID"
make_tmp

# Points available at once and never expiring, so balances are plain sums.
cat >"$TMP/rules.toml" <<'EOF'
[earn]
points_per_unit = "1"
rounding = "floor"

[points]
pending_days = 0
expiry = "never"
EOF
CONFIG="$TMP/loyaltyd.toml"
cat >"$CONFIG" <<EOF
[server]
listen = "127.0.0.1:$PORT"
admin_token = "$ADMIN_TOKEN"
max_body_bytes = 1048576
request_timeout_secs = 10

[storage]
path = "$TMP/data"

[notify.console]

[[shops]]
id = "demo"
name = "Crash Test Shop"
currency = "USD"
timezone = "America/New_York"
country = "US"
rules = "rules.toml"

[shops.shopify]
webhook_secret = "$SECRET"
EOF

SENT="$TMP/sent.log"
ACKED="$TMP/acked.log"
DLOG="$TMP/daemon.log"
: >"$SENT"
: >"$ACKED"

HAS_VERIFY=0
if "$LOYALTYD" --help 2>/dev/null | grep -qE '^\s+verify\b'; then HAS_VERIFY=1; fi

start_daemon() {
    echo "--- start" >>"$DLOG"
    RUST_LOG=warn "$LOYALTYD" serve --config "$CONFIG" >>"$DLOG" 2>&1 &
    DAEMON_PID=$!
    local i
    for i in $(seq 1 600); do
        if curl -fsS -o /dev/null --max-time 1 "$BASE/healthz" 2>/dev/null; then return 0; fi
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            wait "$DAEMON_PID" || true
            DAEMON_PID=""
            echo "crash-test: loyaltyd exited during start-up; last log lines:" >&2
            tail -n 20 "$DLOG" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "crash-test: loyaltyd did not answer /healthz within 60 s" >&2
    return 1
}

VIOLATIONS=0
violation() {
    echo "VIOLATION: $*" >&2
    VIOLATIONS=$((VIOLATIONS + 1))
}

run_verify() { # $1 = when
    [ "$HAS_VERIFY" = 1 ] || return 0
    if "$LOYALTYD" verify --config "$CONFIG" >"$TMP/verify-$1.out" 2>&1; then
        echo "loyaltyd verify ($1): ok"
    else
        violation "loyaltyd verify ($1) exited $?: $(tail -n 5 "$TMP/verify-$1.out")"
    fi
}

json_num() { # $1 = key, $2 = a line of compact JSON
    printf '%s\n' "$2" | grep -o "\"$1\":[-0-9.eE+]*" | head -n 1 | cut -d: -f2
}

echo "== crash test: $ROUNDS rounds, $MEMBERS members, concurrency $CONCURRENCY, seed $SEED, data in $TMP"
[ "$HAS_VERIFY" = 1 ] && echo "   (loyaltyd verify found: will run it)" || echo "   (loyaltyd has no verify subcommand: skipping that step)"

KILLS=0
RESTARTS=0
for round in $(seq 1 "$ROUNDS"); do
    start_daemon || { violation "round $round: daemon did not come up"; break; }
    [ "$round" -gt 1 ] && RESTARTS=$((RESTARTS + 1))
    "$LOADGEN" run --url "$BASE" --shop demo --secret "$SECRET" \
        --members "$MEMBERS" --concurrency "$CONCURRENCY" --duration 60 \
        --seed "$SEED" --id-prefix "$PREFIX" --run-id "r$round" \
        --sent-log "$SENT" --acked-log "$ACKED" \
        >"$TMP/loadgen-$round.out" 2>&1 &
    LOADGEN_PID=$!
    ms=$((MIN_MS + RANDOM % (MAX_MS - MIN_MS + 1)))
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        violation "round $round: loyaltyd died on its own before the kill"
    fi
    kill -9 "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    KILLS=$((KILLS + 1))
    kill -TERM "$LOADGEN_PID" 2>/dev/null || true
    wait "$LOADGEN_PID" || violation "round $round: loadgen failed: $(tail -n 3 "$TMP/loadgen-$round.out")"
    LOADGEN_PID=""
    r=$(grep '^RESULT ' "$TMP/loadgen-$round.out" | tail -n 1 | cut -d' ' -f2-)
    printf 'round %2d: killed after %4d ms: %6s webhooks, %6s acked (200), %s non-2xx, %s connect errors\n' \
        "$round" "$ms" "$(json_num webhooks "$r")" "$(json_num ok_2xx "$r")" \
        "$(printf '%s' "$r" | grep -o '"non_2xx":{[^}]*}' | cut -d: -f2-)" "$(json_num connect "$r")"
done

run_verify after-kill

echo "== final restart and check"
CHECK_RC=0
if start_daemon; then
    RESTARTS=$((RESTARTS + 1))
    "$LOADGEN" check --url "$BASE" --shop demo --admin-token "$ADMIN_TOKEN" \
        --sent-log "$SENT" --acked-log "$ACKED" --concurrency 16 | tee "$TMP/check.out" || CHECK_RC=$?
    kill -TERM "$DAEMON_PID"
    rc=0
    for _ in $(seq 1 300); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        violation "loyaltyd did not stop within 30 s of SIGTERM"
        kill -9 "$DAEMON_PID"
    fi
    wait "$DAEMON_PID" || rc=$?
    DAEMON_PID=""
    [ "$rc" = 0 ] || violation "loyaltyd exited $rc on SIGTERM"
    run_verify after-stop
else
    violation "daemon did not come up for the final check"
    CHECK_RC=1
fi

C=$(grep '^CHECK ' "$TMP/check.out" 2>/dev/null | tail -n 1 | cut -d' ' -f2-)
[ "$CHECK_RC" = 0 ] || violation "loadgen check failed (exit $CHECK_RC)"
[ -n "$C" ] || violation "no CHECK line from loadgen check"
LOST=$(json_num events_lost "$C")
TWICE=$(json_num duplicates_applied_twice "$C")

echo
echo "== crash-test summary"
echo "kills survived:              $RESTARTS of $KILLS kill -9 (restarted and answered /healthz)"
echo "events sent:                 $(json_num sent "$C")"
echo "events acknowledged:         $(json_num acked "$C")"
echo "committed but not acked:     $(json_num committed_unacked "$C") (in flight at kill time; allowed)"
echo "never committed, not acked:  $(json_num never_committed "$C") (applied by the replay; allowed)"
echo "events lost:                 ${LOST:-?} (must be 0)"
echo "customers below acked sum:   $(json_num customers_short "$C") (must be 0)"
echo "duplicates applied twice:    ${TWICE:-?} (must be 0)"
echo "balance mismatches:          before replay $(json_num mismatch_before "$C"), after replay $(json_num mismatch_after "$C") (must be 0)"
if [ "$HAS_VERIFY" = 1 ]; then echo "loyaltyd verify:             run"; else echo "loyaltyd verify:             not available (skipped)"; fi
echo "violations:                  $VIOLATIONS"
if [ "$VIOLATIONS" -ne 0 ]; then
    echo "CRASH TEST FAILED (logs: set KEEP=1 to keep $TMP)"
    exit 1
fi
echo "CRASH TEST PASSED"

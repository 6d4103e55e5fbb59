#!/usr/bin/env bash
# Notification figures: time from webhook ack to the SMS request reaching Twilio (a local
# fake), and outbox throughput with a fast provider. See docs/notify-performance.md.
#
# Per run (RUNS, default 3), against a fresh daemon (release build, temp data dir) whose
# [notify.sms] points at `fakeproviders` (fake Twilio answering 201 at once):
#   0. `loadgen enroll`: MEMBERS customers/update webhooks (phone + SMS consent).
#   1. latency:  open loop at RATE (500) req/s, at most LAT_CONCURRENCY (16) in flight,
#                for DURATION (15) s; orders go round robin to members, so with MEMBERS >=
#                RATE x DURATION each member (phone) gets exactly one order and one SMS.
#   2. throughput: closed loop, TPUT_CONCURRENCY (64) connections for TPUT_DURATION (10) s:
#                SMS/s arriving at the fake vs 2xx/s ingested, and how long after the last
#                ack the last SMS arrives.
#   3. backlog:  the fake is down while BACKLOG (5000) sales come in (open loop at
#                BACKLOG_RATE); then the daemon is stopped, the fake started and the daemon
#                restarted 2 s later (every retry due): the outbox drains, SMS/s first to last.
# After each phase the script waits until the daemon counted every SMS as sent (or
# DRAIN_TIMEOUT s), stops the fake, which writes its arrival log, and joins it with
# loadgen's ack times (`loadgen sms-latency`): per phone, k-th ack <-> k-th accepted SMS.
# The rules give 1 point per unit and no reward, so each sale is exactly one SMS.
# Knobs: RUNS, RATE, DURATION, LAT_CONCURRENCY, TPUT_CONCURRENCY, TPUT_DURATION, MEMBERS,
# BACKLOG, BACKLOG_RATE, NOTIFY_CONCURRENCY (64), SMS_RATE (100000), PHASES
# ("latency throughput backlog"), DRAIN_TIMEOUT (60), NO_BUILD=1, KEEP=1, DAEMON_PORT
# (18292), TWILIO_PORT (18293), LOYALTYD_BIN / LOADGEN_BIN / FAKE_BIN, THREADS.
# Loopback only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
RATE=${RATE:-500}
DURATION=${DURATION:-15}
LAT_CONCURRENCY=${LAT_CONCURRENCY:-16}
TPUT_CONCURRENCY=${TPUT_CONCURRENCY:-64}
TPUT_DURATION=${TPUT_DURATION:-10}
BACKLOG=${BACKLOG:-5000}
BACKLOG_RATE=${BACKLOG_RATE:-1000}
NOTIFY_CONCURRENCY=${NOTIFY_CONCURRENCY:-64}
SMS_RATE=${SMS_RATE:-100000}
PHASES=${PHASES:-latency throughput backlog}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-60}
MEMBERS=${MEMBERS:-$(awk -v r="$RATE" -v d="$DURATION" 'BEGIN { printf "%d", r * d * 1.1 + 100 }')}
DAEMON_PORT=${DAEMON_PORT:-18292}
TWILIO_PORT=${TWILIO_PORT:-18293}
SECRET=notify-bench-secret
TOOL=notify-bench
. tools/lib.sh

build_release -p loyaltyd -p loyaltyd-loadgen -p fakeproviders
need_bins "$LOYALTYD" "$LOADGEN" "$FAKE"
ports_free "$DAEMON_PORT" "$TWILIO_PORT"

DAEMON_PID=""
FAKE_PID=""
STOP_AT_EXIT="FAKE_PID DAEMON_PID"
make_tmp

# No reward in reach and points available at once: each sale is exactly one SMS.
cat >"$TMP/rules.toml" <<'EOF'
[earn]
points_per_unit = "1"
rounding = "floor"

[points]
pending_days = 0
expiry = "never"
EOF

write_config() { # $1 = data dir
    cat >"$TMP/loyaltyd.toml" <<EOF
[server]
listen = "127.0.0.1:$DAEMON_PORT"
admin_token = "bench-admin-token"
max_body_bytes = 1048576
request_timeout_secs = 10

[storage]
path = "$1"

[notify]
concurrency = $NOTIFY_CONCURRENCY
retry_base_ms = 100
retry_cap_secs = 1

[notify.sms]
base_url = "http://127.0.0.1:$TWILIO_PORT"
account_sid = "AC00000000000000000000000000000000"
auth_token = "fake-auth-token"
from = "+15005550006"
rate_per_sec = $SMS_RATE

[[shops]]
id = "demo"
name = "Bench Shop"
currency = "USD"
timezone = "America/New_York"
country = "US"
rules = "rules.toml"

[shops.shopify]
webhook_secret = "$SECRET"
EOF
}

wait_up() { # $1 = url, $2 = pid
    for _ in $(seq 1 300); do
        if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
        kill -0 "$2" 2>/dev/null || { echo "notify-bench: server $2 exited" >&2; return 1; }
        sleep 0.1
    done
    echo "notify-bench: $1 did not answer within 30 s" >&2
    return 1
}

start_fake() { # $1 = arrival log
    "$FAKE" --twilio-port "$TWILIO_PORT" --arrival-log "$1" >"$1.out" 2>&1 &
    FAKE_PID=$!
    for _ in $(seq 1 100); do
        grep -q '^twilio=' "$1.out" 2>/dev/null && return 0
        kill -0 "$FAKE_PID" 2>/dev/null || { echo "notify-bench: fakeproviders exited" >&2; cat "$1.out" >&2; return 1; }
        sleep 0.1
    done
    echo "notify-bench: fakeproviders did not start" >&2
    return 1
}

stop_fake() { stop_pid "$FAKE_PID"; FAKE_PID=""; }

start_daemon() { # $1 = run
    RUST_LOG=warn "$LOYALTYD" serve --config "$TMP/loyaltyd.toml" >>"$TMP/daemon-$1.log" 2>&1 &
    DAEMON_PID=$!
    wait_up "http://127.0.0.1:$DAEMON_PORT/healthz" "$DAEMON_PID"
}

# SMS the daemon counted as sent so far.
sms_sent() {
    curl -s --max-time 5 "http://127.0.0.1:$DAEMON_PORT/metrics" |
        awk '/^loyaltyd_notifications_total\{/ && /channel="sms"/ && /outcome="sent"/ { s += $NF } END { printf "%d", s }'
}

wait_sent() { # $1 = count to reach
    local t0 n
    t0=$(date +%s)
    while :; do
        n=$(sms_sent)
        [ "$n" -ge "$1" ] && return 0
        if [ $(($(date +%s) - t0)) -ge "$DRAIN_TIMEOUT" ]; then
            echo "notify-bench: only $n of $1 SMS sent after ${DRAIN_TIMEOUT}s" >&2
            return 0
        fi
        sleep 0.2
    done
}

json_num() { # $1 = key, $2 = a line of compact JSON
    printf '%s\n' "$2" | grep -o "\"$1\":[-0-9.eE+]*" | head -n 1 | cut -d: -f2
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# $1 = phase, $2 = run; loadgen args follow. Runs the load, waits for the drain, stops the
# fake (it writes its arrival log) and joins; appends "RESULT SMSLAT" to $TMP/$1.results.
measure() {
    local phase=$1 i=$2 before ok r s
    shift 2
    before=$(sms_sent)
    "$LOADGEN" ${THREADS:+--threads "$THREADS"} run --url "http://127.0.0.1:$DAEMON_PORT" \
        --shop demo --secret "$SECRET" --members "$MEMBERS" --id-prefix nb --seed "$i" \
        --run-id "$phase$i" --sms-members --ack-times "$TMP/$phase-$i.acks" "$@" \
        >"$TMP/$phase-$i.out" 2>&1
    r=$(grep '^RESULT ' "$TMP/$phase-$i.out" | tail -n 1 | cut -d' ' -f2-)
    ok=$(json_num ok_2xx "$r")
    if [ -z "${FAKE_PID:-}" ]; then
        # Backlog: restart the daemon once every retry is due, with the fake up, so the
        # worker finds the whole backlog at once (metrics restart from zero).
        stop_pid "$DAEMON_PID"
        sleep 2
        start_fake "$TMP/$phase-$i.arrivals"
        start_daemon "$i"
        before=0
    fi
    wait_sent $((before + ok))
    stop_fake
    "$LOADGEN" sms-latency --acks "$TMP/$phase-$i.acks" --arrivals "$TMP/$phase-$i.arrivals" \
        >"$TMP/$phase-$i.lat" 2>&1 || true
    s=$(grep '^SMSLAT ' "$TMP/$phase-$i.lat" | tail -n 1 | cut -d' ' -f2-)
    [ -n "$s" ] || { echo "notify-bench: no join for $phase run $i:" >&2; cat "$TMP/$phase-$i.lat" >&2; return 1; }
    echo "$r $s" >>"$TMP/$phase.results"
    printf '%-10s run %d: ingest %7.1f 2xx/s (p99 %6.2f ms)  sms %7.1f/s (%7.1f/s during load)  matched %s/%s  tail %7.1f ms  ack->sms p50 %7.2f p90 %7.2f p99 %7.2f max %8.2f ms\n' \
        "$phase" "$i" "$(json_num ok_rps "$r")" "$(json_num p99 "$r")" \
        "$(json_num sms_rps "$s")" "$(json_num sms_in_window_rps "$s")" \
        "$(json_num matched "$s")" "$(json_num acks "$s")" "$(json_num tail_ms "$s")" \
        "$(printf '%s' "$s" | grep -o '"latency_ms":{.*' | grep -o '"p50":[-0-9.eE+]*' | cut -d: -f2)" \
        "$(printf '%s' "$s" | grep -o '"latency_ms":{.*' | grep -o '"p90":[-0-9.eE+]*' | cut -d: -f2)" \
        "$(printf '%s' "$s" | grep -o '"latency_ms":{.*' | grep -o '"p99":[-0-9.eE+]*' | cut -d: -f2)" \
        "$(printf '%s' "$s" | grep -o '"latency_ms":{.*' | grep -o '"max":[-0-9.eE+]*' | cut -d: -f2)"
}

for p in $PHASES; do : >"$TMP/$p.results"; done
echo "== $RUNS run(s): phases $PHASES; $MEMBERS members; notify concurrency $NOTIFY_CONCURRENCY"
for i in $(seq 1 "$RUNS"); do
    write_config "$TMP/data-$i"
    start_fake "$TMP/enroll-$i.arrivals"
    start_daemon "$i"
    "$LOADGEN" enroll --url "http://127.0.0.1:$DAEMON_PORT" --shop demo --secret "$SECRET" \
        --members "$MEMBERS" --id-prefix nb --seed "$i" --concurrency 32 | sed "s/^/enroll     run $i: /"
    sleep 1
    stop_fake
    for phase in $PHASES; do
        case $phase in
        latency)
            start_fake "$TMP/$phase-$i.arrivals"
            measure "$phase" "$i" --rate "$RATE" --concurrency "$LAT_CONCURRENCY" --duration "$DURATION"
            ;;
        throughput)
            start_fake "$TMP/$phase-$i.arrivals"
            measure "$phase" "$i" --concurrency "$TPUT_CONCURRENCY" --duration "$TPUT_DURATION"
            ;;
        backlog)
            # No fake: sends fail (connection refused) and wait in the outbox; measure()
            # starts the fake once the load is over.
            measure "$phase" "$i" --rate "$BACKLOG_RATE" --concurrency "$LAT_CONCURRENCY" \
                --duration "$(awk -v b="$BACKLOG" -v r="$BACKLOG_RATE" 'BEGIN { print b / r }')"
            ;;
        *) echo "notify-bench: unknown phase $phase" >&2; exit 2 ;;
        esac
    done
    stop_pid "$DAEMON_PID"
    DAEMON_PID=""
done

col() { # $1 = phase, $2 = key (first match on the line: RESULT keys come first)
    while read -r line; do json_num "$2" "$line"; done <"$TMP/$1.results" | median
}
lat() { # $1 = phase, $2 = key in the join's latency_ms (SMSLAT keys are sorted: after ingest_rps)
    while read -r line; do
        printf '%s\n' "$line" | sed 's/.*"ingest_rps"//' | grep -o "\"$2\":[-0-9.eE+]*" | head -n 1 | cut -d: -f2
    done <"$TMP/$1.results" | median
}

echo
echo "== medians of $RUNS run(s)"
SUMMARY=""
for p in $PHASES; do
    case $p in
    latency | throughput)
        printf '%-10s ingest %8.1f 2xx/s  sms %8.1f/s (during load %8.1f/s)  last SMS %7.1f ms after last ack  ack->sms ms p50 %7.2f p90 %7.2f p99 %7.2f max %8.2f\n' \
            "$p" "$(col "$p" ok_rps)" "$(col "$p" sms_rps)" "$(col "$p" sms_in_window_rps)" "$(col "$p" tail_ms)" \
            "$(lat "$p" p50)" "$(lat "$p" p90)" "$(lat "$p" p99)" "$(lat "$p" max)"
        ;;
    backlog)
        printf '%-10s %s SMS queued while the provider was down; drained at %8.1f SMS/s (first to last arrival)\n' \
            "$p" "$(col "$p" sms)" "$(col "$p" sms_rps)"
        ;;
    esac
    SUMMARY="$SUMMARY\"$p\":{\"ingest_rps\":$(col "$p" ok_rps),\"sms_rps\":$(col "$p" sms_rps),\"sms_in_window_rps\":$(col "$p" sms_in_window_rps),\"tail_ms\":$(col "$p" tail_ms),\"p50_ms\":$(lat "$p" p50),\"p90_ms\":$(lat "$p" p90),\"p99_ms\":$(lat "$p" p99),\"max_ms\":$(lat "$p" max)},"
done
echo "NOTIFYBENCH {${SUMMARY%,}}"

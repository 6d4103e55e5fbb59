#!/usr/bin/env bash
# Provider storm: signed sales at a steady rate while the SMS provider (the fake Twilio of
# `fakeproviders`) fails in turn with 503s, 500s, 429s with Retry-After, requests that hang
# past the daemon's timeout and connections dropped without an answer; then the provider
# recovers and the backlog drains. See docs/hardening.md, "Provider storms".
#
# Every SAMPLE_SECS the script switches the fake to the next failure mode and prints one row:
# the daemon's RSS, database size and CPU time in the interval, webhooks applied, outbox
# depth, messages parked behind the paused channel, SMS accepted per second, requests the
# provider saw, and outbox messages the worker read per pass. After STORM_SECS the fake answers normally again
# and rows go on until the outbox is empty (time to drain). Each member gets exactly one sale
# (MEMBERS >= RATE x STORM_SECS, orders round robin), so the fake's count of repeated
# recipients is the number of duplicate texts. (A generated sale worth 0 points queues no
# text, so texts can be a few fewer than sales.)
#
# Fails if a webhook failed, if RSS passed MAX_RSS_MIB (1024: RSS grows with the data sled
# holds, 0.2 to 1.3 MiB per MiB of database; the backlog itself adds little, see
# docs/hardening.md), if the backlog did not drain within DRAIN_TIMEOUT (600 s), if the provider accepted a text twice or a text the daemon
# did not count as sent, or if a queued text ended skipped or dead-lettered (a retryable
# failure must not be, within notify.max_age_secs).
#
#   NO_BUILD=1 tools/storm.sh                               # 5 minutes at 200 req/s
#   STORM_SECS=60 SAMPLE_SECS=10 RATE=100 tools/storm.sh    # a short one
# Knobs: STORM_SECS (300), SAMPLE_SECS (20), RATE (200), MODES (the cycle below),
# NOTIFY_CONCURRENCY (32), SMS_RATE (1000: a sender that can take the drain), SMS_TIMEOUT (10 s),
# DRAIN_TIMEOUT (600), MAX_RSS_MIB (1024), DAEMON_PORT (18302), TWILIO_PORT (18303),
# LOYALTYD_BIN / LOADGEN_BIN / FAKE_BIN, NO_BUILD=1, KEEP=1. Loopback only; bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

STORM_SECS=${STORM_SECS:-300}
SAMPLE_SECS=${SAMPLE_SECS:-20}
RATE=${RATE:-200}
MODES=${MODES:-'{"mode":"status","status":503} {"mode":"status","status":500} {"mode":"too_many_requests","retry_after_secs":5} {"mode":"hang","hang_ms":30000} {"mode":"reset"}'}
NOTIFY_CONCURRENCY=${NOTIFY_CONCURRENCY:-32}
SMS_RATE=${SMS_RATE:-1000}
SMS_TIMEOUT=${SMS_TIMEOUT:-10}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
MAX_RSS_MIB=${MAX_RSS_MIB:-1024}
MEMBERS=${MEMBERS:-$(awk -v r="$RATE" -v d="$STORM_SECS" 'BEGIN { printf "%d", r * d * 1.05 + 100 }')}
DAEMON_PORT=${DAEMON_PORT:-18302}
TWILIO_PORT=${TWILIO_PORT:-18303}
SECRET=storm-secret
ADMIN=storm-admin-token
BASE="http://127.0.0.1:$DAEMON_PORT"
FAKE_URL="http://127.0.0.1:$TWILIO_PORT"
TOOL=storm
. tools/lib.sh

build_release -p loyaltyd -p loyaltyd-loadgen -p fakeproviders
need_bins "$LOYALTYD" "$LOADGEN" "$FAKE"
ports_free "$DAEMON_PORT" "$TWILIO_PORT"

DAEMON_PID=""
FAKE_PID=""
LOAD_PID=""
STOP_AT_EXIT="LOAD_PID DAEMON_PID FAKE_PID"
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
cat >"$TMP/loyaltyd.toml" <<EOF
[server]
listen = "127.0.0.1:$DAEMON_PORT"
admin_token = "$ADMIN"
max_body_bytes = 1048576

[storage]
path = "$TMP/data"

[notify]
concurrency = $NOTIFY_CONCURRENCY

[notify.sms]
base_url = "$FAKE_URL"
account_sid = "AC00000000000000000000000000000000"
auth_token = "fake-auth-token"
from = "+15005550006"
rate_per_sec = $SMS_RATE
timeout_secs = $SMS_TIMEOUT

[[shops]]
id = "demo"
name = "Storm Shop"
currency = "USD"
timezone = "America/New_York"
country = "US"
rules = "rules.toml"

[shops.shopify]
webhook_secret = "$SECRET"
EOF

"$FAKE" --twilio-port "$TWILIO_PORT" >"$TMP/fake.out" 2>&1 &
FAKE_PID=$!
RUST_LOG=warn "$LOYALTYD" serve --config "$TMP/loyaltyd.toml" >"$TMP/daemon.out" 2>"$TMP/daemon.log" &
DAEMON_PID=$!
for url in "$FAKE_URL/__mode" "$BASE/healthz"; do
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && break
        sleep 0.1
    done
done

set_mode() { curl -fsS -o /dev/null --max-time 5 -H 'content-type: application/json' -d "$1" "$FAKE_URL/__mode"; }
metrics() { curl -s --max-time 10 "$BASE/metrics"; }
series() { # $1 = metrics text, $2 = series name with labels (exact); 0 when absent
    printf '%s\n' "$1" | awk -v s="$2" '$1 == s { v = $2 } END { printf "%d", v + 0 }'
}
sms_sent() { series "$1" 'loyaltyd_notifications_total{channel="sms",provider="twilio",outcome="sent"}'; }
applied() { series "$1" 'loyaltyd_webhooks_total{adapter="shopify",outcome="applied"}'; }
fake_requests() { curl -s --max-time 5 "$FAKE_URL/__stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$DAEMON_PID/status"; }
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }

echo "== enrolling $MEMBERS members (phone + SMS consent)"
"$LOADGEN" enroll --url "$BASE" --shop demo --secret "$SECRET" --members "$MEMBERS" \
    --id-prefix storm --concurrency 32 | tail -n 1

peak_rss=0
prev_t=$(date +%s.%N); prev_cpu=$(cpu_ticks); prev_sent=0; prev_applied=0; prev_req=$(fake_requests)
prev_passes=0; prev_examined=0
row() { # $1 = t_s, $2 = mode label
    local m now cpu sent app req rss dt passes examined per_pass
    m=$(metrics); now=$(date +%s.%N); cpu=$(cpu_ticks); req=$(fake_requests); rss=$(rss_kib)
    sent=$(sms_sent "$m"); app=$(applied "$m")
    passes=$(series "$m" loyaltyd_notify_passes_total); examined=$(series "$m" loyaltyd_notify_examined_total)
    dt=$(awk -v a="$prev_t" -v b="$now" 'BEGIN { print b - a }')
    per_pass=$(awk -v e="$((examined - prev_examined))" -v p="$((passes - prev_passes))" 'BEGIN { if (p > 0) printf "%.1f", e / p; else print "-" }')
    [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
    printf '%6s  %-24s %7.1f %6d %7.2f %8d %8d %8d %8.1f %8d %9s\n' "$1" "$2" \
        "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" "$(du -sm "$TMP/data" | cut -f1)" \
        "$(awk -v c="$((cpu - prev_cpu))" -v t="$TICKS" 'BEGIN { print c / t }')" \
        "$((app - prev_applied))" "$(series "$m" loyaltyd_outbox_depth)" "$(series "$m" loyaltyd_notify_parked)" \
        "$(awk -v s="$((sent - prev_sent))" -v d="$dt" 'BEGIN { print s / d }')" \
        "$((req - prev_req))" "$per_pass"
    prev_t=$now; prev_cpu=$cpu; prev_sent=$sent; prev_applied=$app; prev_req=$req
    prev_passes=$passes; prev_examined=$examined
}

echo "== storm: $RATE req/s for $STORM_SECS s, provider mode changes every $SAMPLE_SECS s; then recovery"
printf '%6s  %-24s %7s %6s %7s %8s %8s %8s %8s %8s %9s\n' t_s provider rss_mib db_mib cpu_s applied outbox parked sms/s prov_req read/pass
read -r -a modes <<<"$MODES"
set_mode "${modes[0]}"
"$LOADGEN" run --url "$BASE" --shop demo --secret "$SECRET" --members "$MEMBERS" \
    --id-prefix storm --sms-members --rate "$RATE" --concurrency 16 --duration "$STORM_SECS" \
    >"$TMP/load.out" 2>&1 &
LOAD_PID=$!
t=0; i=0
while [ "$t" -lt "$STORM_SECS" ]; do
    mode=${modes[$((i % ${#modes[@]}))]}
    set_mode "$mode"
    label=$(printf '%s' "$mode" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(":".join(str(v) for v in m.values()))')
    sleep "$SAMPLE_SECS"
    t=$((t + SAMPLE_SECS)); i=$((i + 1))
    row "$t" "$label"
done
wait "$LOAD_PID" || true
LOAD_PID=""
result=$(grep '^RESULT ' "$TMP/load.out" | tail -n 1 | cut -d' ' -f2-)
failed=$(printf '%s' "$result" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["responses"]-r["ok_2xx"]+sum(r["errors"].values()))')
p99=$(printf '%s' "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms"]["p99"])')

set_mode '{"mode":"ok"}'
recovered=$(date +%s.%N)
total=$(applied "$(metrics)")
drained=""
next_row=$((t + SAMPLE_SECS))
while :; do
    sleep 1
    m=$(metrics)
    elapsed=$(awk -v a="$recovered" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$(series "$m" loyaltyd_outbox_depth)" -eq 0 ]; then
        drained=$elapsed
        row "$(awk -v t="$t" -v e="$elapsed" 'BEGIN { printf "%d", t + e }')" "ok (drained)"
        break
    fi
    if awk -v e="$elapsed" -v n="$((next_row - t))" 'BEGIN { exit !(e >= n) }'; then
        row "$next_row" "ok"
        next_row=$((next_row + SAMPLE_SECS))
    fi
    if awk -v e="$elapsed" -v l="$DRAIN_TIMEOUT" 'BEGIN { exit !(e >= l) }'; then
        row "$(awk -v t="$t" -v e="$elapsed" 'BEGIN { printf "%d", t + e }')" "ok (timed out)"
        break
    fi
done
sleep 2
stats=$(curl -s --max-time 5 "$FAKE_URL/__stats")
m=$(metrics)
sent=$(sms_sent "$m")
skipped=$(series "$m" 'loyaltyd_notifications_total{channel="sms",provider="none",outcome="skipped"}')
accepted=$(printf '%s' "$stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accepted"])')
repeats=$(printf '%s' "$stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["repeats"])')
dead=$(curl -s --max-time 10 -H "Authorization: Bearer $ADMIN" "$BASE/v1/shops/demo/deadletters" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["dead_letters"]))')
echo "provider: $stats"
echo "STORM {\"storm_secs\":$STORM_SECS,\"rate\":$RATE,\"applied\":$total,\"webhook_failures\":$failed,\"webhook_p99_ms\":$p99,\"sms_sent\":$sent,\"skipped\":$skipped,\"accepted\":$accepted,\"repeats\":$repeats,\"dead_letters\":$dead,\"drain_secs\":${drained:-null},\"peak_rss_kib\":$peak_rss}"
ok=1
[ "$failed" -eq 0 ] || { echo "storm: $failed webhooks failed" >&2; ok=0; }
[ "$peak_rss" -le $((MAX_RSS_MIB * 1024)) ] || { echo "storm: peak RSS $peak_rss KiB over $MAX_RSS_MIB MiB" >&2; ok=0; }
[ -n "$drained" ] || { echo "storm: the outbox did not drain within $DRAIN_TIMEOUT s" >&2; ok=0; }
[ "$accepted" -eq "$sent" ] || { echo "storm: the provider accepted $accepted texts, the daemon sent $sent" >&2; ok=0; }
[ "$skipped" -eq 0 ] || { echo "storm: $skipped texts skipped" >&2; ok=0; }
[ "$repeats" -eq 0 ] || { echo "storm: $repeats texts sent twice" >&2; ok=0; }
[ "$dead" -eq 0 ] || { echo "storm: $dead dead letters" >&2; ok=0; }
stop_pid "$DAEMON_PID"; DAEMON_PID=""
"$LOYALTYD" verify --config "$TMP/loyaltyd.toml" >/dev/null || { echo "storm: verify failed" >&2; ok=0; }
[ "$ok" -eq 1 ] && echo "STORM PASSED" || { echo "STORM FAILED"; exit 1; }

#!/usr/bin/env bash
# Soak test: the load generator at a moderate, steady rate against the release daemon,
# sampling every SAMPLE_SECS the daemon's RSS, open files, database size and the
# interval's webhook latency (p50/p99). Fails if any webhook failed, if open files grow
# (> first + 32), or if RSS passes MAX_RSS_MIB (default 512). RSS follows the data, not
# the uptime: sled's cache fills in the first minutes, then its page table grows with
# what was written (docs/hardening.md, "Memory and retention"; tools/mem-probe.sh takes
# it apart).
#
#   SOAK_SECS=1800 SAMPLE_SECS=60 tools/soak.sh     # the documented 30-minute run
#   SOAK_SECS=120 SAMPLE_SECS=20 tools/soak.sh      # the CI version
# Knobs: RATE (300 req/s), MEMBERS (2000), PORT (18282), CACHE_MIB (the config's
# storage.cache_capacity_mib; default: the daemon's), NO_BUILD=1, KEEP=1,
# LOYALTYD_BIN / LOADGEN_BIN (other builds; tools/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECS=${SOAK_SECS:-120}
SAMPLE_SECS=${SAMPLE_SECS:-20}
RATE=${RATE:-300}
MEMBERS=${MEMBERS:-2000}
PORT=${PORT:-18282}
BASE="http://127.0.0.1:$PORT"
TOOL=soak
. tools/lib.sh

build_release -p loyaltyd -p loyaltyd-loadgen
need_bins "$LOYALTYD" "$LOADGEN"
ports_free "$PORT"

DAEMON_PID=""
STOP_AT_EXIT="DAEMON_PID"
make_tmp

cat >"$TMP/rules.toml" <<'EOF2'
[earn]
points_per_unit = "1"

[points]
expiry = "fixed"
expiry_days = 365

[[rewards]]
id = "free-coffee"
name = "Free coffee"
points = 50
EOF2
cat >"$TMP/loyaltyd.toml" <<EOF2
[server]
listen = "127.0.0.1:$PORT"
admin_token = "soak-admin-token"

[storage]
path = "$TMP/data"
${CACHE_MIB:+cache_capacity_mib = $CACHE_MIB}

[notify.console]
file = "$TMP/notifications.log"

[[shops]]
id = "demo"
currency = "USD"
timezone = "America/New_York"
rules = "rules.toml"

[shops.shopify]
webhook_secret = "soak-secret"
EOF2

RUST_LOG=warn "$LOYALTYD" serve --config "$TMP/loyaltyd.toml" >"$TMP/daemon.out" 2>"$TMP/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null --max-time 1 "$BASE/healthz" 2>/dev/null && break
    sleep 0.1
done

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$DAEMON_PID/status"; }
fds() { ls "/proc/$DAEMON_PID/fd" | wc -l; }
db_bytes() { du -sb "$TMP/data" | cut -f1; }

printf '%6s %10s %6s %12s %10s %9s %9s %8s\n' t_s rss_kib fds db_bytes ok_2xx p50_ms p99_ms errors
samples=$(( SOAK_SECS / SAMPLE_SECS ))
first_rss=""; first_fds=""; first_total=0; failed=0; total=0
for i in $(seq 1 "$samples"); do
    out=$("$LOADGEN" run --url "$BASE" --secret soak-secret --members "$MEMBERS" \
        --rate "$RATE" --concurrency 32 --duration "$SAMPLE_SECS" --id-prefix "soak$i" 2>&1 | grep '^RESULT ' | sed 's/^RESULT //')
    ok=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ok_2xx"])')
    p50=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms"]["p50"])')
    p99=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms"]["p99"])')
    err=$(echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["responses"]-r["ok_2xx"]+sum(r["errors"].values()))')
    rss=$(rss_kib); f=$(fds); db=$(db_bytes)
    failed=$(( failed + err )); total=$(( total + ok ))
    [ -z "$first_rss" ] && first_rss=$rss && first_fds=$f && first_total=$total
    # Say what failed: loadgen's counts, and what the daemon logged.
    [ "$err" -eq 0 ] || echo "soak: sample $i: $out" >&2
    printf '%6d %10d %6d %12d %10d %9s %9s %8d\n' $(( i * SAMPLE_SECS )) "$rss" "$f" "$db" "$ok" "$p50" "$p99" "$err"
done
end_rss=$(rss_kib); end_fds=$(fds)
# RSS added per sale stored after the first sample (sled's page table and the allocator
# slack around it follow the keys stored: docs/hardening.md, "Where the growth goes").
per_sale=$(( (end_rss - first_rss) * 1024 / ( total > first_total ? total - first_total : 1 ) ))
echo "SOAK {\"secs\":$SOAK_SECS,\"rate\":$RATE,\"acked\":$total,\"failed\":$failed,\"rss_kib_first\":$first_rss,\"rss_kib_end\":$end_rss,\"rss_bytes_per_sale_after_first\":$per_sale,\"fds_first\":$first_fds,\"fds_end\":$end_fds}"
ok=1
if [ "$failed" -ne 0 ]; then
    echo "soak: $failed webhooks failed; the daemon's warnings and errors:" >&2
    grep -E "WARN|ERROR" "$TMP/daemon.log" | tail -20 >&2 || true
    ok=0
fi
[ "$end_rss" -le $(( ${MAX_RSS_MIB:-512} * 1024 )) ] || { echo "soak: RSS grew from $first_rss to $end_rss KiB (limit ${MAX_RSS_MIB:-512} MiB)" >&2; ok=0; }
[ "$end_fds" -le $(( first_fds + 32 )) ] || { echo "soak: open files grew from $first_fds to $end_fds" >&2; ok=0; }
"$LOYALTYD" --version >/dev/null
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"; DAEMON_PID=""
"$LOYALTYD" verify --config "$TMP/loyaltyd.toml" >/dev/null || { echo "soak: verify failed" >&2; ok=0; }
[ "$ok" -eq 1 ] && echo "SOAK PASSED" || { echo "SOAK FAILED"; exit 1; }

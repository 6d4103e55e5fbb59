#!/usr/bin/env bash
# Throughput baseline: loyaltyd's webhook endpoint against a bare hyper server that
# answers 200 {} (`loadgen bare`), same runtime shape, same client, same bodies.
#
# Runs RUNS (3) closed-loop runs of DURATION (20) s at CONCURRENCY (64) against each,
# interleaved (bare, daemon, bare, daemon, ...) so background noise hits both alike,
# and prints the median throughput and latency of each and the daemon/bare ratio.
# The daemon runs from release with a temp data dir on 127.0.0.1:$DAEMON_PORT (18282);
# the bare server on 127.0.0.1:$BARE_PORT (19090). Loopback only; every run is bounded.
# Knobs: RUNS, DURATION, CONCURRENCY, MEMBERS (1000), CACHE_MIB (sled's cache; default:
# the daemon's), NO_BUILD=1, KEEP=1, LOYALTYD_BIN / LOADGEN_BIN, THREADS (loadgen runtime threads; default: one per core).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-20}
CONCURRENCY=${CONCURRENCY:-64}
MEMBERS=${MEMBERS:-1000}
DAEMON_PORT=${DAEMON_PORT:-18282}
ND_PORT=${ND_PORT:-18283}
BARE_PORT=${BARE_PORT:-19090}
SECRET=bench-shopify-secret
TOOL=bench
. tools/lib.sh

build_release -p loyaltyd -p loyaltyd-loadgen
need_bins "$LOYALTYD" "$LOADGEN"
ports_free "$DAEMON_PORT" "$BARE_PORT"

DAEMON_PID=""
BARE_PID=""
ND_PID=""
STOP_AT_EXIT="DAEMON_PID BARE_PID ND_PID"
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
cat >"$TMP/loyaltyd.toml" <<EOF
[server]
listen = "127.0.0.1:$DAEMON_PORT"
admin_token = "bench-admin-token"
max_body_bytes = 1048576
request_timeout_secs = 10

[storage]
path = "$TMP/data"
${CACHE_MIB:+cache_capacity_mib = $CACHE_MIB}

[notify.console]

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

# The same daemon acknowledging before the flush: what durability costs.
sed -e "s|127.0.0.1:$DAEMON_PORT|127.0.0.1:$ND_PORT|" -e "s|path = \"$TMP/data\"|path = \"$TMP/data-nd\"\ndurable_acks = false|" \
    "$TMP/loyaltyd.toml" >"$TMP/loyaltyd-nd.toml"

wait_up() { # $1 = url, $2 = pid
    for _ in $(seq 1 300); do
        if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
        kill -0 "$2" 2>/dev/null || { echo "bench: server $2 exited" >&2; return 1; }
        sleep 0.1
    done
    echo "bench: $1 did not answer within 30 s" >&2
    return 1
}

"$LOADGEN" bare --listen "127.0.0.1:$BARE_PORT" >"$TMP/bare.log" 2>&1 &
BARE_PID=$!
RUST_LOG=warn "$LOYALTYD" serve --config "$TMP/loyaltyd.toml" >"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
RUST_LOG=error "$LOYALTYD" serve --config "$TMP/loyaltyd-nd.toml" >"$TMP/nodurable.log" 2>&1 &
ND_PID=$!
wait_up "http://127.0.0.1:$ND_PORT/healthz" "$ND_PID"
wait_up "http://127.0.0.1:$BARE_PORT/" "$BARE_PID"
wait_up "http://127.0.0.1:$DAEMON_PORT/healthz" "$DAEMON_PID"

json_num() { # $1 = key, $2 = a line of compact JSON
    printf '%s\n' "$2" | grep -o "\"$1\":[-0-9.eE+]*" | head -n 1 | cut -d: -f2
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$TMP/bare.results"
: >"$TMP/daemon.results"
: >"$TMP/nodurable.results"
echo "== $RUNS x ${DURATION}s at concurrency $CONCURRENCY, $MEMBERS members, interleaved"
for i in $(seq 1 "$RUNS"); do
    for target in bare daemon nodurable; do
        case $target in bare) port=$BARE_PORT ;; daemon) port=$DAEMON_PORT ;; *) port=$ND_PORT ;; esac
        out="$TMP/$target-$i.out"
        "$LOADGEN" ${THREADS:+--threads "$THREADS"} run --url "http://127.0.0.1:$port" \
            --shop demo --secret "$SECRET" --members "$MEMBERS" \
            --concurrency "$CONCURRENCY" --duration "$DURATION" \
            --id-prefix bench --seed 1 --run-id "$target$i" --no-retry >"$out" 2>&1
        r=$(grep '^RESULT ' "$out" | tail -n 1 | cut -d' ' -f2-)
        echo "$r" >>"$TMP/$target.results"
        printf '%-9s run %d: %8.1f req/s  2xx %7s  non-2xx %-14s errors %s/%s/%s  p50 %7.3f  p90 %7.3f  p99 %7.3f  max %8.3f ms\n' \
            "$target" "$i" "$(json_num throughput_rps "$r")" "$(json_num ok_2xx "$r")" \
            "$(printf '%s' "$r" | grep -o '"non_2xx":{[^}]*}' | cut -d: -f2-)" \
            "$(json_num connect "$r")" "$(json_num timeout "$r")" "$(json_num other "$r")" \
            "$(json_num p50 "$r")" "$(json_num p90 "$r")" "$(json_num p99 "$r")" "$(json_num max "$r")"
    done
done

col() { # $1 = target, $2 = key
    while read -r line; do json_num "$2" "$line"; done <"$TMP/$1.results" | median
}
B_RPS=$(col bare ok_rps)
D_RPS=$(col daemon ok_rps)
B_P50=$(col bare p50)
D_P50=$(col daemon p50)
B_P99=$(col bare p99)
D_P99=$(col daemon p99)
N_RPS=$(col nodurable ok_rps)
N_P50=$(col nodurable p50)
N_P99=$(col nodurable p99)
echo
echo "== medians of $RUNS runs (2xx/s; latency ms)"
printf '%-8s %12s %10s %10s\n' target "2xx req/s" p50 p99
printf '%-8s %12.1f %10.3f %10.3f\n' bare "$B_RPS" "$B_P50" "$B_P99"
printf '%-8s %12.1f %10.3f %10.3f\n' daemon "$D_RPS" "$D_P50" "$D_P99"
printf '%-8s %12.1f %10.3f %10.3f\n' no-flush "$N_RPS" "$N_P50" "$N_P99"
awk -v b="$B_RPS" -v d="$D_RPS" -v bp="$B_P99" -v dp="$D_P99" 'BEGIN {
    printf "daemon/bare throughput ratio: %.3f (%.1f%% of bare)\n", (b > 0 ? d / b : 0), (b > 0 ? 100 * d / b : 0)
    printf "daemon/bare p99 ratio:        %.1fx\n", (bp > 0 ? dp / bp : 0)
}'
awk -v n="$N_RPS" -v d="$D_RPS" 'BEGIN { printf "durable/no-flush throughput:  %.1f%%\n", (n > 0 ? 100 * d / n : 0) }'
echo "BENCH {\"bare_rps\":$B_RPS,\"daemon_rps\":$D_RPS,\"bare_p50_ms\":$B_P50,\"daemon_p50_ms\":$D_P50,\"bare_p99_ms\":$B_P99,\"daemon_p99_ms\":$D_P99,\"noflush_rps\":$N_RPS,\"noflush_p99_ms\":$N_P99}"

#!/usr/bin/env bash
# Memory probe (issue 8): is the daemon's RSS tied to the data it holds or to how long it
# has run? Three phases on one data directory, then a control on a fresh one:
#
#   1. fresh db, LOAD_SECS of signed sales at RATE            -> RSS at the end
#   2. stop, `dbstats` on the data (keys and bytes per tree, size on disk)
#   3. restart on the same data                               -> RSS after start-up,
#      then AFTER_SECS more load                              -> RSS again
#   4. control: fresh db, AFTER_SECS of load                  -> RSS
#
# If RSS in 3 is close to the end of 1 (and well above 4) it follows the data; if it
# drops back to 4 it followed the process's lifetime.
#
#   NO_BUILD=1 LOAD_SECS=180 AFTER_SECS=30 RATE=200 tools/mem-probe.sh
# Knobs: RATE (200), MEMBERS (2000), PORT (18283), LOAD_SECS (180), AFTER_SECS (30),
# EXTRA_STORAGE (lines appended to [storage], e.g. retention keys), KEEP=1, HEAP=1 (with
# gdb: after each step of phase 1, what glibc malloc holds and has in use, and RSS after
# `malloc_trim(0)`: free memory malloc kept vs. memory in use).
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-200}
MEMBERS=${MEMBERS:-2000}
PORT=${PORT:-18283}
LOAD_SECS=${LOAD_SECS:-180}
AFTER_SECS=${AFTER_SECS:-30}
BASE="http://127.0.0.1:$PORT"
TOOL=mem-probe
. tools/lib.sh

build_release -p loyaltyd -p loyaltyd-loadgen --example dbstats
DBSTATS=$TARGET_DIR/release/examples/dbstats
need_bins "$LOYALTYD" "$LOADGEN" "$DBSTATS"
ports_free "$PORT"

DAEMON_PID=""
STOP_AT_EXIT="DAEMON_PID"
make_tmp

write_config() { # $1: data dir name
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
    cat >"$TMP/$1.toml" <<EOF2
[server]
listen = "127.0.0.1:$PORT"
admin_token = "probe-admin-token"

[storage]
path = "$TMP/$1"
${EXTRA_STORAGE:-}

[notify.console]
file = "$TMP/notifications-$1.log"

[[shops]]
id = "demo"
currency = "USD"
timezone = "America/New_York"
rules = "rules.toml"

[shops.shopify]
webhook_secret = "probe-secret"
EOF2
}

start() { # $1: config name
    RUST_LOG=warn "$LOYALTYD" serve --config "$TMP/$1.toml" >>"$TMP/daemon.out" 2>>"$TMP/daemon.log" &
    DAEMON_PID=$!
    for _ in $(seq 1 600); do
        curl -fsS -o /dev/null --max-time 1 "$BASE/healthz" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "mem-probe: daemon did not start" >&2
    return 1
}
stop() {
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" || true
    DAEMON_PID=""
}
# RSS and its parts: anonymous memory (heap: sled's page table, cache, our state) vs.
# file-backed pages (the binary, mapped files).
mem() { # $1: label
    local rss anon file
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
    anon=$(awk '/^Anonymous:/ {print $2}' "/proc/$DAEMON_PID/smaps_rollup")
    file=$(awk '/^RssFile:/ {print $2}' "/proc/$DAEMON_PID/status")
    printf 'MEM %-28s rss_kib=%-8s anon_kib=%-8s file_kib=%-8s db_bytes=%s\n' "$1" "$rss" "$anon" "$file" "$(du -sb "$TMP/$CUR" | cut -f1)"
}
# Attach gdb, print malloc's totals (to the daemon's stderr) and trim; report the last.
heap() { # $1: label
    [ -n "${HEAP:-}" ] || return 0
    local before after sys use
    before=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
    timeout 120 gdb -p "$DAEMON_PID" -batch -ex 'call (void)malloc_stats()' -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || true
    after=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
    sys=$(grep -A2 'Total (incl. mmap)' "$TMP/daemon.log" | tail -2 | head -1 | awk '{print $4}')
    use=$(grep -A2 'Total (incl. mmap)' "$TMP/daemon.log" | tail -1 | awk '{print $5}')
    printf 'HEAP %-27s rss_kib=%-8s malloc_held_mib=%-5s malloc_in_use_mib=%-5s rss_kib_after_trim=%s\n' "$1" "$before" $(( ${sys:-0} / 1048576 )) $(( ${use:-0} / 1048576 )) "$after"
}
load() { # $1: seconds, $2: id prefix
    "$LOADGEN" run --url "$BASE" --secret probe-secret --members "$MEMBERS" \
        --rate "$RATE" --concurrency 32 --duration "$1" --id-prefix "$2" 2>&1 | grep '^RESULT ' | sed 's/^RESULT /LOAD /'
}

CUR=data; write_config data
start data; mem "1 fresh, started"
step=$(( LOAD_SECS / 3 ))
for i in 1 2 3; do load "$step" "probe$i"; mem "1 after $(( i * step )) s of load"; heap "1 after $(( i * step )) s"; done
stop
"$DBSTATS" "$TMP/data"
start data; sleep 2; mem "3 restarted, idle"
load "$AFTER_SECS" probe-after; mem "3 restarted + ${AFTER_SECS} s load"
stop

CUR=control; write_config control
start control; mem "4 control fresh, started"
load "$AFTER_SECS" control; mem "4 control + ${AFTER_SECS} s load"
stop

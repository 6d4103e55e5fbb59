# Shared by the tool scripts (bench, crash-test, mem-probe, notify-bench, soak, storm):
# building and finding the release binaries, checking that ports are free, a temp dir,
# and an exit trap that stops what the script started. Source it after setting TOOL:
#
#   TOOL=soak
#   . tools/lib.sh
#
# Knobs every script takes: NO_BUILD=1 (use the binaries as they are), KEEP=1 (keep the
# temp dir), CARGO_TARGET_DIR, LOYALTYD_BIN / LOADGEN_BIN / FAKE_BIN (other builds).

TARGET_DIR=${CARGO_TARGET_DIR:-target}
LOYALTYD=${LOYALTYD_BIN:-$TARGET_DIR/release/loyaltyd}
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/loadgen}
FAKE=${FAKE_BIN:-$TARGET_DIR/release/fakeproviders}

die() {
    echo "$TOOL: $*" >&2
    exit 2
}

# build_release ARGS...: `cargo build --release ARGS...`, unless NO_BUILD is set.
build_release() {
    [ -z "${NO_BUILD:-}" ] || return 0
    echo "== cargo build --release $*"
    cargo build --release "$@"
}

# need_bins FILE...: each must be an executable.
need_bins() {
    local b
    for b in "$@"; do
        [ -x "$b" ] || die "missing binary $b"
    done
}

# ports_free PORT...: nothing may answer on 127.0.0.1:PORT (another run, or a daemon
# left over, would mix its answers into the figures).
ports_free() {
    local p
    for p in "$@"; do
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p/"; then
            die "something already answers on 127.0.0.1:$p; choose another port"
        fi
    done
}

# stop_pid PID: TERM, wait up to 10 s, then KILL. An empty PID does nothing.
stop_pid() {
    [ -n "${1:-}" ] || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# make_tmp: sets TMP to a new temp dir and installs the exit trap, which stops the
# processes whose pids are in the variables named by STOP_AT_EXIT (in that order), then
# removes TMP unless KEEP is set. The script's exit status is kept.
STOP_AT_EXIT=""
make_tmp() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/loyaltyd-$TOOL.XXXXXX")
    trap _lib_cleanup EXIT
}

_lib_cleanup() {
    local rc=$? v
    for v in $STOP_AT_EXIT; do
        stop_pid "${!v:-}"
    done
    if [ -n "${KEEP:-}" ]; then echo "$TOOL: kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}

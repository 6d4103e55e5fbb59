#!/usr/bin/env bash
# Supply chain checks with no network for the advisories: cargo-deny (licenses,
# advisories, bans incl. OpenSSL, duplicate versions as warnings, sources) and
# cargo-audit, both against the RustSec snapshot in ../shared/advisory-db.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deny >/dev/null 2>&1 || cargo install --locked cargo-deny
command -v cargo-audit >/dev/null 2>&1 || cargo install --locked cargo-audit

snapshot=../shared/advisory-db
[ -d "$snapshot/crates" ] || { echo "no advisory snapshot at $snapshot" >&2; exit 1; }

# Both tools read a git checkout; make one from the snapshot (cargo-deny looks for
# <db-path>/advisory-db-<hash of the URL>).
db=target/advisory-dbs/advisory-db-3157b0e258782691
if [ ! -d "$db/.git" ]; then
    rm -rf "$db" && mkdir -p "$db"
    cp -r "$snapshot"/. "$db"/
    git -C "$db" init -q
    git -C "$db" add -A
    git -C "$db" -c user.name=ci -c user.email=ci@localhost commit -qm "RustSec snapshot $(cat "$snapshot/SNAPSHOT" 2>/dev/null | head -1)"
fi

cargo fetch --locked -q
echo "== cargo deny (advisories, bans, licenses, sources)"
cargo deny --offline check advisories bans licenses sources
echo "== cargo audit"
# Vulnerabilities fail; "unmaintained" warnings (fxhash, instant via sled 0.34;
# atomic-polyfill) are listed and explained in docs/security.md.
cargo audit --no-fetch --db "$db"

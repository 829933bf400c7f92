#!/usr/bin/env bash
# Installs dynalite (a DynamoDB-compatible server that rejects what real DynamoDB rejects,
# unlike moto) and js-yaml (reads deploy/cloud/sessions-table.yaml for the tests) into
# var/node, pinned. Idempotent: a second run with the same pins does nothing.
#
# Used by the cloud-sync integration tests and `make bench` (tests/bench/bench_sync.py);
# scripts/bootstrap.sh calls it. Needs node >= 16 and npm (Debian: nodejs npm; installed
# here when run as root and missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=var/node
# dynalite 3.2.2 is pure JavaScript (memdown): no native build, runs on Debian 12's node 18.
# 4.x needs node >= 20 and a native leveldb binding.
PACKAGES=(dynalite@3.2.2 js-yaml@4.1.0)
STAMP="$PREFIX/.installed"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "installing Debian packages: nodejs npm"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    else
        echo "error: dynalite needs node and npm: sudo apt-get install -y nodejs npm" >&2
        exit 1
    fi
fi

want="${PACKAGES[*]}"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && [ -x "$PREFIX/node_modules/.bin/dynalite" ] && [ -d "$PREFIX/node_modules/js-yaml" ]; then
    exit 0
fi

say "installing ${want} into $PREFIX"
mkdir -p "$PREFIX"
# A package.json of our own keeps npm from walking up and writing to the repository's root.
[ -f "$PREFIX/package.json" ] || echo '{"name": "spottypotty-test-tools", "private": true}' \
    >"$PREFIX/package.json"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error --save-exact "${PACKAGES[@]}"
printf '%s\n' "$want" >"$STAMP"
say "ready: $PREFIX/node_modules/.bin/dynalite"

#!/usr/bin/env bash
# The whole test suite, with its own set-up: installs the Kafka-protocol test broker
# (tansu) when it is missing, then runs every test of the workspace.
#
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_VERSION=0.6.0
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"

if [ -n "${FJORD_TANSU_BIN:-}" ] && [ -x "$FJORD_TANSU_BIN" ]; then
  echo "test broker: $FJORD_TANSU_BIN"
elif command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "test broker: $(command -v tansu) ($(tansu --version))"
else
  echo "test broker: installing tansu $TANSU_VERSION (about 14 minutes on 2 cores, once)"
  cargo install "tansu@$TANSU_VERSION" --locked --features dynostore,libsql
fi

# Test peers written by others (GRIP client libraries, libzmq, a GRIP origin framework)
# live in a project-local virtualenv and node_modules, installed on first use.
if [ -f tests/peers/requirements.txt ]; then
  if [ ! -x .venv/bin/python ] || ! cmp -s tests/peers/requirements.txt .venv/requirements.txt; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt
    cp tests/peers/requirements.txt .venv/requirements.txt
  fi
  export FJORD_TEST_PYTHON="$PWD/.venv/bin/python"
fi
if [ -f tests/peers/package.json ]; then
  if [ ! -d tests/peers/node_modules ] || [ tests/peers/package.json -nt tests/peers/node_modules ]; then
    (cd tests/peers && npm install --no-audit --no-fund --silent)
  fi
fi

cargo build --workspace --bins
cargo test --workspace "$@"

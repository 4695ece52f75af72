#!/usr/bin/env bash
# Dry-run trading, offline: install (creating .venv if needed), start the loopback exchange in
# live mode (the bundled candles shifted to the wall clock, prices movable through
# /_control/...), run `freqtrade trade --dry-run` with MetaStrategy and its REST API on
# 127.0.0.1:8080 (user_data/config.dryrun.json), until Ctrl-C; then stop the exchange.
#   bash scripts/dryrun.sh [extra freqtrade trade arguments]
# Drive it from another terminal: see README.md, "Dry-run, offline".
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
source scripts/exchange.sh
start_exchange --live

.venv/bin/freqtrade trade --dry-run \
    --config config.example.json --config "$overlay" --config user_data/config.dryrun.json \
    --strategy MetaStrategy "$@" || status=$?
# Ctrl-C: freqtrade exits 130 after a clean shutdown
[ "${status:-0}" = 130 ] && exit 0
exit "${status:-0}"

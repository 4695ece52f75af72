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
port=${METASTRATEGY_EXCHANGE_PORT:-18080}
log=user_data/loopback-exchange.log

.venv/bin/freqtrade-metastrategy exchange --live --port "$port" \
    --datadir user_data/data/binance > "$log" 2>&1 &
exchange_pid=$!
trap 'kill "$exchange_pid" 2>/dev/null; wait "$exchange_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$log" 2>/dev/null && break
    kill -0 "$exchange_pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
done

overlay=user_data/config.loopback.json
if [ "$port" != 18080 ]; then
    mkdir -p user_data/backtest_results
    sed "s/127.0.0.1:18080/127.0.0.1:$port/g" "$overlay" \
        > "user_data/backtest_results/config.loopback.$port.json"
    overlay="user_data/backtest_results/config.loopback.$port.json"
fi

NO_PROXY=127.0.0.1,localhost .venv/bin/freqtrade trade --dry-run \
    --config config.example.json --config "$overlay" --config user_data/config.dryrun.json \
    --strategy MetaStrategy "$@" || status=$?
# Ctrl-C: freqtrade exits 130 after a clean shutdown
[ "${status:-0}" = 130 ] && exit 0
exit "${status:-0}"

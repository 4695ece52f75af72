#!/usr/bin/env bash
# The main job, offline: install (creating .venv if needed), start the loopback exchange, run
# `freqtrade backtesting` with MetaStrategy on the bundled data, print Freqtrade's report and
# the learned Q-table, stop the exchange.
#   bash scripts/backtest.sh [extra freqtrade backtesting arguments, e.g. --timerange 20230101-]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
port=${METASTRATEGY_EXCHANGE_PORT:-18080}
out=user_data/backtest_results
mkdir -p "$out"

.venv/bin/freqtrade-metastrategy exchange --port "$port" --datadir user_data/data/binance \
    > user_data/loopback-exchange.log 2>&1 &
exchange_pid=$!
trap 'kill "$exchange_pid" 2>/dev/null; wait "$exchange_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    grep -q "listening on" user_data/loopback-exchange.log 2>/dev/null && break
    kill -0 "$exchange_pid" 2>/dev/null || { cat user_data/loopback-exchange.log; exit 1; }
    sleep 0.1
done

# The overlay points Freqtrade at 127.0.0.1:18080; another port needs its own copy.
overlay=user_data/config.loopback.json
if [ "$port" != 18080 ]; then
    sed "s/127.0.0.1:18080/127.0.0.1:$port/g" "$overlay" > "$out/config.loopback.$port.json"
    overlay="$out/config.loopback.$port.json"
fi

NO_PROXY=127.0.0.1,localhost .venv/bin/freqtrade backtesting \
    --config config.example.json --config "$overlay" \
    --strategy MetaStrategy --datadir user_data/data/binance \
    --timerange 20220101-20240101 --cache none --export trades \
    --backtest-directory "$out" "$@"

echo
echo "Learned Q-table of this backtest:"
.venv/bin/freqtrade-metastrategy show --file "$out/metastrategy_qtable.json"

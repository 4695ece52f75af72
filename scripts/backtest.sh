#!/usr/bin/env bash
# The main job, offline: install (creating .venv if needed), start the loopback exchange, run
# `freqtrade backtesting` with MetaStrategy on the bundled data, print Freqtrade's report and
# the learned Q-table, stop the exchange.
#   bash scripts/backtest.sh [extra freqtrade backtesting arguments, e.g. --timerange 20230101-]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
out=user_data/backtest_results
mkdir -p "$out"
source scripts/exchange.sh
start_exchange

.venv/bin/freqtrade backtesting \
    --config config.example.json --config "$overlay" \
    --strategy MetaStrategy --datadir user_data/data/binance \
    --timerange 20220101-20240101 --cache none --export trades \
    --backtest-directory "$out" "$@"

echo
echo "Learned Q-table of this backtest:"
.venv/bin/freqtrade-metastrategy show --file "$out/metastrategy_qtable.json"

#!/usr/bin/env bash
# Which policy is the default: the out-of-sample evidence of issue 12, reproducible.
# Walk-forward (train a year, test the next) of every policy on two entry signals (the bundled
# breakout, MetaStrategy; the RSI cross, MetaStrategyRsi), then the rule
# (freqtrade_metastrategy/evaluation/evidence.py) over both reports.
#   bash scripts/evidence.sh [DATADIR] [TIMERANGE]
# DATADIR: Freqtrade feather candles of the 8 pairs of user_data/config.dev8.json (default: the
# development set, ../shared/data/binance); TIMERANGE default 20180101-20231231.
set -euo pipefail
cd "$(dirname "$0")/.."
datadir="${1:-../shared/data/binance}"
timerange="${2:-20180101-20231231}"
out=user_data/evidence
bash scripts/setup.sh >/dev/null
for strategy in MetaStrategy MetaStrategyRsi; do
    .venv/bin/freqtrade-metastrategy evaluate -c config.example.json -c user_data/config.dev8.json \
        --strategy "$strategy" --datadir "$datadir" --timerange "$timerange" \
        --walk-forward 365D:365D --out "$out/$strategy"
done
.venv/bin/freqtrade-metastrategy evidence --markdown --out "$out/evidence.json" \
    breakout="$out/MetaStrategy/report.json" rsi_cross="$out/MetaStrategyRsi/report.json"

#!/usr/bin/env bash
# Hyperopt with a hold-out, offline: tune the regime thresholds and the learner settings on 2022
# (`--spaces regime learner`, loss MetaStrategyRLoss), then backtest 2023, which the tuning never
# saw, with the tuned parameters and with the defaults, and print both.
#   bash scripts/hyperopt.sh [epochs (default 60)] [extra freqtrade hyperopt arguments]
# The tuned parameters land in user_data/backtest_results/hyperopt/strategies/MetaStrategy.json
# (Freqtrade's parameter file, next to a copy of the strategy) and the hold-out tables next to
# it, so the main job's backtest is not affected. Copy that file next to
# user_data/strategies/MetaStrategy.py to trade with it.
set -euo pipefail
cd "$(dirname "$0")/.."

epochs=${1:-60}
shift || true
train=20220101-20230101
holdout=20230101-20240101

bash scripts/setup.sh
out=user_data/backtest_results
work=$out/hyperopt
rm -rf "$work"
mkdir -p "$work/strategies" "$work/defaults"
cp user_data/strategies/MetaStrategy.py "$work/strategies/"
cp user_data/strategies/MetaStrategy.py "$work/defaults/"   # no parameter file: the defaults

source scripts/exchange.sh
start_exchange
# the learner space tunes the seeds' bandit (epsilon, alpha, min_samples): that policy
echo '{"metastrategy": {"policy": "epsilon_greedy"}}' > "$work/seeds.json"
common=(--config config.example.json --config "$overlay" --config "$work/seeds.json" --strategy MetaStrategy
        --datadir user_data/data/binance)

echo "== hyperopt on $train ($epochs epochs, spaces regime learner)"
.venv/bin/freqtrade hyperopt "${common[@]}" --strategy-path "$work/strategies" \
    --timerange "$train" --spaces regime learner -e "$epochs" -j 2 \
    --hyperopt-loss MetaStrategyRLoss --hyperopt-path user_data/hyperopts \
    --min-trades 30 --random-state 42 "$@"

holdout_backtest() {  # $1 = label, $2 = strategy dir
    # the learned table goes to $work, not to the main job's metastrategy_qtable.json
    printf '{"metastrategy": {"backtest_qtable_file": "%s"}}\n' "$work/qtable-$1.json" \
        > "$work/qtable-$1.config.json"
    .venv/bin/freqtrade backtesting "${common[@]}" --config "$work/qtable-$1.config.json" \
        --strategy-path "$2" --timerange "$holdout" --cache none --export none \
        > "$work/backtest-$1.log" 2>&1 || { tail -40 "$work/backtest-$1.log"; exit 1; }
    echo "-- hold-out $holdout, $1:"
    grep -E "^\s*│ *TOTAL" "$work/backtest-$1.log" | tail -1 || true
    .venv/bin/freqtrade-metastrategy show --file "$work/qtable-$1.json" | tail -1
}
echo
echo "== the hold-out year the tuning never saw"
holdout_backtest tuned "$work/strategies"
holdout_backtest defaults "$work/defaults"

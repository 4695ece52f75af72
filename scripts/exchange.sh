# Sourced by the scripts that run Freqtrade offline: start_exchange [--live] starts the loopback
# exchange on $METASTRATEGY_EXCHANGE_PORT (default 18080) in the background, waits until it
# listens, stops it when the calling script exits, and sets $overlay to a Freqtrade config
# overlay pointing ccxt at it (the repo's user_data/config.loopback.json, or a copy rewritten
# to another port in user_data/backtest_results/).
start_exchange() {
    local port=${METASTRATEGY_EXCHANGE_PORT:-18080}
    local log=user_data/loopback-exchange.log
    .venv/bin/freqtrade-metastrategy exchange "$@" --port "$port" \
        --datadir user_data/data/binance > "$log" 2>&1 &
    exchange_pid=$!
    trap 'kill "$exchange_pid" 2>/dev/null; wait "$exchange_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 300); do
        grep -q "listening on" "$log" 2>/dev/null && break
        kill -0 "$exchange_pid" 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.1
    done
    grep -q "listening on" "$log" 2>/dev/null \
        || { echo "loopback exchange did not start within 30 s:"; cat "$log"; exit 1; }
    overlay=user_data/config.loopback.json
    if [ "$port" != 18080 ]; then
        mkdir -p user_data/backtest_results
        sed "s/127.0.0.1:18080/127.0.0.1:$port/g" "$overlay" \
            > "user_data/backtest_results/config.loopback.$port.json"
        overlay="user_data/backtest_results/config.loopback.$port.json"
    fi
    export NO_PROXY=127.0.0.1,localhost
}

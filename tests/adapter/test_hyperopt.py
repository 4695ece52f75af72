"""Hyperopt of the regime thresholds and the learner settings (``--spaces regime learner``).

In-process: parameter defaults are the seeds', the precedence of the values (hyperopt epoch >
strategy parameter file > config > default), a threshold change moves the regime mix where
hyperopt re-evaluates it (``advise_entry``, every epoch) and not where it computes indicators
once, and every backtest starts from a fresh learner with the settings in effect.

Real runs (``freqtrade hyperopt`` against the loopback exchange): 12 epochs with ``-j 2`` write
the parameter file and never touch the live store; ``-j 1`` (one strategy object reused across
epochs) gives exactly the ``-j 2`` results (fresh copies); the best epoch's parameters, picked
up from the file by ``freqtrade backtesting``, reproduce that epoch's result; ``freqtrade
trade`` logs the file's values; spaces that would replace the profiles' exits are refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import (
    DATADIR,
    REPO_ROOT,
    FreqtradeRun,
    OfflineConfig,
    module_runner,
    read_trades,
    write_offline_config,
)
from freqtrade.enums import RunMode
from freqtrade.exceptions import OperationalException
from freqtrade.strategy import DecimalParameter, IntParameter
from helpers.dryrun import DryRunBot, LoopbackProcess

from freqtrade_metastrategy.loopback import LoopbackExchange
from freqtrade_metastrategy.regime import RegimeThresholds
from freqtrade_metastrategy.selector import SelectorConfig
from freqtrade_metastrategy.store import MemoryStore, SqlStore
from freqtrade_metastrategy.strategy import (
    LEARNER_PARAMETERS,
    REGIME_PARAMETERS,
    MetaStrategyBase,
)

STRATEGY_FILE = REPO_ROOT / "user_data" / "strategies" / "MetaStrategy.py"
HYPEROPT_PATH = REPO_ROOT / "user_data" / "hyperopts"
TIMERANGE = "20230101-20230401"
PAIRS = ["BTC/USDT", "ETH/USDT"]
EPOCHS = 12
RANDOM_STATE = 7


# -- in-process ----------------------------------------------------------------------------------


class _Tuned(MetaStrategyBase):
    """Own Parameter objects: Freqtrade's are shared class attributes, so a test that sets
    ``.value`` / ``.in_space`` on MetaStrategyBase's would leak into every other test."""

    regime_trend_adx = DecimalParameter(15.0, 40.0, default=25.0, decimals=1, space="regime")
    regime_low_vol_atr_pct = DecimalParameter(0.005, 0.020, default=0.015, decimals=3,
                                              space="regime")
    learner_epsilon = DecimalParameter(0.0, 0.30, default=0.10, decimals=2, space="learner")
    learner_min_samples = IntParameter(1, 20, default=5, space="learner")


def make(runmode: RunMode, tmp_path: Path, metastrategy: dict[str, Any] | None = None,
         file_params: dict[str, Any] | None = None) -> _Tuned:
    # the seeds' learner: the learner space tunes its epsilon / alpha / min_samples
    section = {"policy": "epsilon_greedy", **(metastrategy or {})}
    s = _Tuned({"runmode": runmode, "timeframe": "1h", "stake_currency": "USDT",
                "user_data_dir": str(tmp_path), "metastrategy": section,
                "spaces": ["regime", "learner"]})
    s._ft_params_from_file = file_params or {}
    return s


def btc_frame() -> pd.DataFrame:
    df = pd.read_feather(DATADIR / "BTC_USDT-1h.feather")
    return df[df["date"] >= pd.Timestamp("2022-01-01", tz="UTC")].reset_index(drop=True)


def trend_share(regimes: Any) -> float:
    counts = Counter(str(r) for r in regimes)
    return (counts["trend_up"] + counts["trend_down"]) / sum(counts.values())


def test_parameter_defaults_are_the_seeds_and_inside_their_ranges(tmp_path: Path) -> None:
    # bot_start gives every parameter without a file value the configured one (here: none)
    make(RunMode.BACKTEST, tmp_path).bot_start()
    seeds, learner = RegimeThresholds(), SelectorConfig()
    for name, (field, scale) in REGIME_PARAMETERS.items():
        param = getattr(MetaStrategyBase, name)
        assert param.space == "regime", name
        assert param.value * scale == pytest.approx(getattr(seeds, field)), name
        assert param.low <= param.value <= param.high, name
    for name, field in LEARNER_PARAMETERS.items():
        param = getattr(MetaStrategyBase, name)
        assert param.space == "learner", name
        assert param.value == pytest.approx(getattr(learner, field)), name
        assert param.low <= param.value <= param.high, name
    # every sample keeps low < high < extreme: the ranges do not overlap
    low, high, extreme = (getattr(MetaStrategyBase, f"regime_{k}_atr_pct")
                          for k in ("low_vol", "high_vol", "extreme_vol"))
    assert low.high < high.low and high.high < extreme.low


def test_untuned_parameters_carry_the_config_values_into_the_parameter_file(
    tmp_path: Path,
) -> None:
    """Freqtrade exports every parameter's .value after a hyperopt, tuned or not: the ones
    not tuned must hold what the run used, unrounded (DecimalParameter's setter rounds)."""
    learner_only = make(RunMode.HYPEROPT, tmp_path, {
        "thresholds": {"trend_adx_threshold": 22.25, "illiquid_volume_threshold": 2_250_000}})
    learner_only.config["spaces"] = ["learner"]
    learner_only.bot_start()
    assert learner_only.regime_trend_adx.value == 22.25
    assert learner_only.regime_illiquid_volume_musd.value == 2.25
    regime_only = make(RunMode.HYPEROPT, tmp_path,
                       {"epsilon": 0.125, "min_epsilon": 0.125, "min_samples": 7})
    regime_only.config["spaces"] = ["regime"]
    regime_only.bot_start()
    assert regime_only.learner_epsilon.value == 0.125  # 0.12 would fail min_epsilon later
    assert regime_only.learner_min_samples.value == 7
    assert isinstance(regime_only.learner_min_samples.value, int)


def test_a_parameter_file_value_is_left_to_freqtrade_and_a_conflict_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    s = make(RunMode.BACKTEST, tmp_path, {"thresholds": {"trend_adx_threshold": 30}},
             file_params={"regime": {"regime_trend_adx": 31.0}})
    s.regime_trend_adx.value = 12.3  # whatever it holds: Freqtrade loads the file after
    with caplog.at_level(logging.WARNING):
        s.bot_start()
    assert s.regime_trend_adx.value == 12.3
    assert s.regime_thresholds().trend_adx_threshold == 31.0
    assert "parameter file's regime_trend_adx (31.0) overrides the config (30.0)" in caplog.text


def test_settings_invalid_somewhere_in_the_search_range_stop_hyperopt_at_start(
    tmp_path: Path,
) -> None:
    s = make(RunMode.HYPEROPT, tmp_path, {"min_epsilon": 0.05})
    with pytest.raises(OperationalException, match=r"corner of the search ranges.*min_epsilon"):
        s.bot_start()
    assert s.learner_epsilon.value == 0.10  # restored
    # outside hyperopt (or without the learner space) nothing is tried
    make(RunMode.BACKTEST, tmp_path, {"min_epsilon": 0.05}).bot_start()
    ok = make(RunMode.HYPEROPT, tmp_path, {"min_epsilon": 0.05})
    ok.config["spaces"] = ["regime"]
    ok.bot_start()


class _Overlapping(MetaStrategyBase):
    """A subclass whose ATR% ranges overlap: both corners are fine, a mixed one is not."""

    regime_low_vol_atr_pct = DecimalParameter(0.005, 0.030, default=0.015, decimals=3,
                                              space="regime")
    regime_high_vol_atr_pct = DecimalParameter(0.020, 0.055, default=0.040, decimals=3,
                                               space="regime")


def test_overlapping_ranges_are_caught_at_a_mixed_corner(tmp_path: Path) -> None:
    s = _Overlapping({"runmode": RunMode.HYPEROPT, "timeframe": "1h",
                      "stake_currency": "USDT", "user_data_dir": str(tmp_path),
                      "spaces": ["regime"]})
    with pytest.raises(OperationalException, match=r"regime_low_vol_atr_pct=0\.03.*"
                                                   r"regime_high_vol_atr_pct=0\.02"):
        s.bot_start()


def test_precedence_file_over_config_over_default(tmp_path: Path) -> None:
    assert make(RunMode.BACKTEST, tmp_path).regime_thresholds().trend_adx_threshold == 25.0
    configured = make(RunMode.BACKTEST, tmp_path,
                      {"thresholds": {"trend_adx_threshold": 28}, "epsilon": 0.2})
    assert configured.regime_thresholds().trend_adx_threshold == 28.0
    assert configured.selector_config().epsilon == 0.2
    from_file = make(RunMode.BACKTEST, tmp_path,
                     {"thresholds": {"trend_adx_threshold": 28}, "epsilon": 0.2},
                     {"regime": {"regime_trend_adx": 31.5},
                      "learner": {"learner_epsilon": 0.05, "learner_min_samples": 9}})
    t, sel = from_file.regime_thresholds(), from_file.selector_config()
    assert (t.trend_adx_threshold, sel.epsilon, sel.min_samples) == (31.5, 0.05, 9)
    assert t.low_vol_atr_pct_threshold == 0.015  # not in the file: config / default


def test_threshold_change_moves_regime_mix_per_epoch_not_at_indicators(tmp_path: Path) -> None:
    s = make(RunMode.HYPEROPT, tmp_path)
    param = s.regime_trend_adx
    param.in_space, param.value = True, 15.0
    try:
        # hyperopt's single indicator pass: the epoch's value is not read (it would be stale)
        frame = s.populate_indicators(btc_frame(), {"pair": "BTC/USDT"})
        at_default = trend_share(frame["regime"])
        # each epoch: advise_entry reclassifies with the epoch's threshold
        shares = {}
        for adx in (15.0, 25.0, 40.0):
            param.value = adx
            out = s.advise_entry(frame.copy(), {"pair": "BTC/USDT"})
            shares[adx] = trend_share(out["regime"])
            # the trades freeze the same regimes (signal arrays follow the epoch)
            assert trend_share(s._signal_arrays["BTC/USDT"][1]) == shares[adx]
            assert (out["regime_code"] >= 0).all()
        assert shares[25.0] == pytest.approx(at_default)
        assert shares[15.0] > shares[25.0] + 0.10 > shares[40.0] + 0.20, shares
    finally:
        param.in_space, param.value = False, 25.0


def test_every_backtest_starts_from_a_fresh_learner_with_the_settings_in_effect(
    tmp_path: Path,
) -> None:
    s = make(RunMode.HYPEROPT, tmp_path)
    s.bot_start()
    eps = s.learner_epsilon
    eps.in_space = True
    try:
        t0 = datetime(2023, 1, 1, tzinfo=UTC)
        for epoch, value in enumerate((0.0, 0.25, 0.0)):
            eps.value = value  # hyperopt sets the epoch's values before the backtest
            if epoch == 2:
                s._last_loop = None  # -j 2: a fresh copy of the object as bot_start left it
            s.bot_loop_start(current_time=t0)
            assert s.selector.config.epsilon == value
            assert s.selector.store.is_empty()
            s.selector.update_reward("BTC/USDT", "trend_up", "scalp", 1.0, trade_id=f"e{epoch}")
            s.bot_loop_start(current_time=t0 + timedelta(hours=1))  # same run: kept
            assert not s.selector.store.is_empty()
    finally:
        eps.in_space, eps.value = False, 0.10


def test_learner_settings_reach_the_selector_from_the_parameter_file(tmp_path: Path) -> None:
    s = make(RunMode.BACKTEST, tmp_path, file_params={"learner": {"learner_min_samples": 12}})
    s.bot_start()
    s.bot_loop_start(current_time=datetime(2023, 1, 1, tzinfo=UTC))
    assert s.selector.config.min_samples == 12


# -- real hyperopt runs ----------------------------------------------------------------------


@dataclass
class HyperoptRun:
    run: FreqtradeRun
    config: OfflineConfig
    strategy_dir: Path
    epochs: list[dict[str, Any]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def exchange_module() -> Iterator[LoopbackExchange]:
    with LoopbackExchange(DATADIR, port=0) as exchange:
        yield exchange


def hyperopt(
    directory: Path, url: str, jobs: int, epochs: int, *, export: bool,
    store_url: str | None = None, spaces: tuple[str, ...] = ("regime", "learner"),
    metastrategy: dict[str, Any] | None = None,
) -> HyperoptRun:
    strategy_dir = directory / "strategies"
    strategy_dir.mkdir(parents=True)
    shutil.copy(STRATEGY_FILE, strategy_dir)
    # the seeds' learner (one setting away from the default): the learner space is its
    section: dict[str, Any] = {"seed": 42, "policy": "epsilon_greedy", **(metastrategy or {})}
    if store_url:
        section["store_url"] = store_url
    cfg = write_offline_config(directory, url, pairs=PAIRS, overrides={
        "stake_amount": 1000, "dry_run_wallet": 10000, "max_open_trades": 2,
        "metastrategy": section,
    })
    args = ["hyperopt", "--strategy", "MetaStrategy", "--strategy-path", str(strategy_dir),
            "--datadir", str(DATADIR), "--timerange", TIMERANGE, *cfg.config_args(),
            "--spaces", *spaces, "-e", str(epochs), "-j", str(jobs),
            "--hyperopt-loss", "MetaStrategyRLoss", "--hyperopt-path", str(HYPEROPT_PATH),
            "--random-state", str(RANDOM_STATE), "--min-trades", "10", "--print-json"]
    if not export:
        args.append("--disable-param-export")
    run = module_runner()(args, timeout=600)
    results = sorted((cfg.user_data_dir / "hyperopt_results").glob("*.fthypt"))
    rows = [json.loads(line) for line in results[-1].read_text().splitlines()] if results else []
    return HyperoptRun(run, cfg, strategy_dir, rows)


@pytest.fixture(scope="module")
def live_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live") / "metastrategy.sqlite"
    with SqlStore(f"sqlite:///{path}") as store:
        store.apply_reward("BTC/USDT", "trend_up", "moderate", 1.25, alpha=0.2,
                           trade_id="BTC/USDT|live|1")
    return path


@pytest.fixture(scope="module")
def parallel_run(
    tmp_path_factory: pytest.TempPathFactory, exchange_module: LoopbackExchange, live_store: Path,
) -> tuple[HyperoptRun, str, int]:
    before = digest(live_store), live_store.stat().st_mtime_ns
    run = hyperopt(tmp_path_factory.mktemp("hyperopt-j2"), exchange_module.url, 2, EPOCHS,
                   export=True, store_url=f"sqlite:///{live_store}")
    return run, *before


def key(epoch: dict[str, Any]) -> str:
    return json.dumps(epoch["params_dict"], sort_keys=True)


def outcome(epoch: dict[str, Any]) -> tuple[Any, ...]:
    m = epoch["results_metrics"]
    return (epoch["loss"], m["total_trades"], m["profit_total_abs"], m["wins"], m["losses"])


@pytest.mark.slow
def test_hyperopt_j2_writes_parameter_file_and_never_the_live_store(
    parallel_run: tuple[HyperoptRun, str, int], live_store: Path,
) -> None:
    run, live_digest, live_mtime = parallel_run
    assert run.run.ok, run.run.tail()
    assert len(run.epochs) == EPOCHS
    assert "hyperopt tunes regime_trend_adx" in run.run.output
    params = json.loads((run.strategy_dir / "MetaStrategy.json").read_text())
    assert params["strategy_name"] == "MetaStrategy"
    assert set(params["params"]["regime"]) == set(REGIME_PARAMETERS)
    assert set(params["params"]["learner"]) == set(LEARNER_PARAMETERS)
    # different thresholds really gave different epochs
    assert len({outcome(e) for e in run.epochs}) > EPOCHS // 2
    # the live store: same bytes; no store and no backtest table appeared in user_data
    assert (digest(live_store), live_store.stat().st_mtime_ns) == (live_digest, live_mtime)
    with SqlStore(f"sqlite:///{live_store}") as store:
        assert [row.trade_id for row in store.ledger()] == ["BTC/USDT|live|1"]
    user_data = run.config.user_data_dir
    assert not list(user_data.glob("metastrategy*.sqlite*"))
    assert not (user_data / "backtest_results" / "metastrategy_qtable.json").exists()


@pytest.mark.slow
def test_hyperopt_j1_reuses_one_object_and_matches_j2(
    tmp_path: Path, exchange_module: LoopbackExchange, parallel_run: tuple[HyperoptRun, str, int],
) -> None:
    serial = hyperopt(tmp_path / "j1", exchange_module.url, 1, 6, export=False)
    assert serial.run.ok, serial.run.tail()
    parallel = {key(e): outcome(e) for e in parallel_run[0].epochs}
    common = [e for e in serial.epochs if key(e) in parallel]
    # the same random state proposes the same first points whatever -j
    assert len(common) >= 5, [key(e) for e in serial.epochs]
    for epoch in common:
        assert outcome(epoch) == parallel[key(epoch)], epoch["current_epoch"]


@pytest.mark.slow
def test_best_parameters_are_picked_up_by_the_next_backtest_and_reproduce_the_epoch(
    parallel_run: tuple[HyperoptRun, str, int],
) -> None:
    run = parallel_run[0]
    best = min(run.epochs, key=lambda e: e["loss"])
    cfg = run.config
    bt = module_runner()(
        ["backtesting", "--strategy", "MetaStrategy", "--strategy-path", str(run.strategy_dir),
         "--datadir", str(DATADIR), "--timerange", TIMERANGE, *cfg.config_args(),
         "--export", "trades", "--backtest-directory", str(cfg.backtest_dir), "--cache", "none"],
        timeout=300,
    )
    assert bt.ok, bt.tail()
    assert "Loading parameters from file" in bt.output
    adx = best["params_dict"]["regime_trend_adx"]
    assert f"[REGIME] thresholds: ADX > {adx:g}" in bt.output
    trades = read_trades(cfg.backtest_dir)
    metrics = best["results_metrics"]
    assert len(trades) == metrics["total_trades"]
    assert sum(t["profit_abs"] for t in trades) == pytest.approx(metrics["profit_total_abs"],
                                                                 abs=1e-6)


@pytest.mark.slow
def test_regime_space_alone_changes_the_epochs(
    tmp_path: Path, exchange_module: LoopbackExchange,
) -> None:
    """Only thresholds vary: if the regimes were fixed at hyperopt's single indicator pass,
    every epoch would give the same trades."""
    run = hyperopt(tmp_path, exchange_module.url, 1, 5, export=False, spaces=("regime",))
    assert run.run.ok, run.run.tail()
    assert len({outcome(e) for e in run.epochs}) >= 4, [outcome(e) for e in run.epochs]


@pytest.mark.slow
def test_a_learner_only_hyperopt_keeps_the_config_thresholds_in_the_parameter_file(
    tmp_path: Path, exchange_module: LoopbackExchange,
) -> None:
    run = hyperopt(tmp_path, exchange_module.url, 1, 3, export=True, spaces=("learner",),
                   metastrategy={"thresholds": {"trend_adx_threshold": 30}, "alpha": 0.3})
    assert run.run.ok, run.run.tail()
    params = json.loads((run.strategy_dir / "MetaStrategy.json").read_text())["params"]
    assert params["regime"]["regime_trend_adx"] == 30.0        # the config's, not 25
    assert params["regime"]["regime_trend_strength"] == 0.3    # the default
    best = min(run.epochs, key=lambda e: e["loss"])
    assert params["learner"] == best["params_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("spaces", [("default",), ("regime", "roi"), ("stoploss",)])
def test_spaces_that_replace_the_profiles_exits_are_refused(
    tmp_path: Path, exchange_module: LoopbackExchange, spaces: tuple[str, ...],
) -> None:
    run = hyperopt(tmp_path, exchange_module.url, 1, 2, export=False, spaces=spaces)
    assert run.run.returncode != 0, run.run.tail()
    assert "Use --spaces regime learner" in run.run.output, run.run.tail()
    assert not run.epochs


@pytest.mark.slow
def test_freqtrade_trade_loads_the_parameter_file(tmp_path: Path) -> None:
    strategy_dir = tmp_path / "strategies"
    strategy_dir.mkdir()
    shutil.copy(STRATEGY_FILE, strategy_dir)
    (strategy_dir / "MetaStrategy.json").write_text(json.dumps({
        "strategy_name": "MetaStrategy",
        "params": {"regime": {"regime_trend_adx": 33.3, "regime_illiquid_volume_musd": 1.5},
                   "learner": {"learner_epsilon": 0.05, "learner_min_samples": 8},
                   "fullinfo": {"fullinfo_min_signals": 80, "fullinfo_half_life": 700.0}},
        "ft_stratparam_v": 1,
        "export_time": "2026-11-21 00:00:00.000000+00:00",
    }))
    exchange = LoopbackProcess(tmp_path / "exchange")
    bot = DryRunBot(tmp_path / "bot", exchange, pairs=["BTC/USDT"], strategy_path=strategy_dir)
    try:
        bot.start()
        log = bot.log.read_text()
    finally:
        bot.stop()
        exchange.stop()
    assert "Loading parameters from file" in log, log[-3000:]
    assert "[REGIME] thresholds: ADX > 33.3," in log, log[-3000:]
    assert "24h volume >= 1.5e+06" in log, log[-3000:]
    # the default (full-information) policy takes the file's fullinfo values; the bandit's
    # learner values are in the file but do not apply to it
    assert ("[RL] learner: walk_forward_static (full information), discounted estimator, "
            "half-life 700, min_signals 80") in log, log[-3000:]


def test_every_backtest_starts_from_the_same_pretrained_table(tmp_path: Path) -> None:
    trained = MemoryStore()
    for i in range(6):
        trained.apply_reward("BTC/USDT", "trend_up", "trend_rider", 2.0, alpha=0.2,
                             trade_id=f"old{i}")
    path = tmp_path / "pretrained.json"
    path.write_text(json.dumps(trained.export_dict()))
    s = make(RunMode.HYPEROPT, tmp_path, {"pretrained": str(path)})
    s.bot_start()
    t0 = datetime(2023, 1, 1, tzinfo=UTC)
    for epoch in range(3):
        s.bot_loop_start(current_time=t0)  # a new epoch (-j 1: time went backwards)
        cell = s.selector.store.get("BTC/USDT", "trend_up", "trend_rider")
        assert cell is not None and cell.count == 6, epoch
        assert s.selector.store.ledger() == []  # old trade keys never shadow new ones
        s.selector.update_reward("BTC/USDT", "trend_up", "trend_rider", -1.0,
                                 trade_id=f"epoch{epoch}")
        s.bot_loop_start(current_time=t0 + timedelta(hours=1))

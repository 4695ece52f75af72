"""The backtest benchmark's twins must override exactly the callbacks MetaStrategyBase
overrides (BenchTwins.py asserts it at import): a strategy change that adds or drops a callback
would otherwise silently skew ``bench/bench_backtest.py``."""

from __future__ import annotations

import importlib.util

from conftest import REPO_ROOT


def test_bench_twins_override_what_metastrategy_overrides() -> None:
    path = REPO_ROOT / "bench" / "strategies" / "BenchTwins.py"
    spec = importlib.util.spec_from_file_location("BenchTwins_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # raises AssertionError on a mismatch
    assert "custom_stoploss" in module.META_CALLBACKS

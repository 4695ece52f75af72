"""Tuning fixtures (``tests/tuning`` is a package, so this conftest is ``tuning.conftest``
and never shadows ``tests/conftest.py``): the bundled slice's signals, outcomes and
regime features, computed once.

``tune_inputs``: the merged config (``config.example.json`` + an overlay pointing at the
bundled data), :data:`TIMERANGE` and its :class:`~freqtrade_metastrategy.tuning.objective.
TuneData` (every signal, illiquid ones too). ``folds``: the walk-forward :data:`WALK_FORWARD`
over it, as ``evaluate`` cuts it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from freqtrade_metastrategy.commands.tune_commands import tune_data
from freqtrade_metastrategy.entries import load_config
from freqtrade_metastrategy.evaluation.walkforward import rolling_splits
from freqtrade_metastrategy.timerange import parse_timerange
from freqtrade_metastrategy.tuning.objective import Fold, TuneData

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMERANGE = "20220101-20240101"
WALK_FORWARD = ("240D", "120D")


def config_files(root: Path, metastrategy: dict[str, Any] | None = None) -> list[str]:
    """``config.example.json`` + an overlay (bundled data, repo strategies, ``root`` as
    user_data, ``metastrategy`` merged into the section when given)."""
    overlay: dict[str, Any] = {
        "user_data_dir": str(root / "user_data"),
        "datadir": str(REPO_ROOT / "user_data" / "data" / "binance"),
        "strategy_path": str(REPO_ROOT / "user_data" / "strategies"),
    }
    if metastrategy is not None:
        base = json.loads((REPO_ROOT / "config.example.json").read_text())
        overlay["metastrategy"] = {**base.get("metastrategy", {}), **metastrategy}
    (root / "user_data").mkdir(parents=True, exist_ok=True)
    path = root / "overlay.json"
    path.write_text(json.dumps(overlay))
    return [str(REPO_ROOT / "config.example.json"), str(path)]


def folds_of(timerange: str, train: str, test: str) -> list[Fold]:
    full = parse_timerange(timerange)
    return [Fold((tr[0].value, tr[1].value), (te[0].value, te[1].value))
            for tr, te in rolling_splits(full[0], full[1], train=train, test=test)]


@pytest.fixture(scope="session")
def tune_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], TuneData]:
    config = load_config(config_files(tmp_path_factory.mktemp("tune-data")))
    data = tune_data(config, TIMERANGE)
    logging.getLogger("freqtrade").setLevel(logging.WARNING)
    return config, data


@pytest.fixture(scope="session")
def folds() -> list[Fold]:
    return folds_of(TIMERANGE, *WALK_FORWARD)

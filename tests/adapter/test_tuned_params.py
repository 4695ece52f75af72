"""A parameter file installed by ``tune`` (or hyperopt) over a learner that already learned.

The decision settings (warm-up, margins) take effect on the stored learner; a new memory
(half-life) does not apply to statistics learned under another: they keep their own, with a
warning, and the bot starts (it used to refuse to start and point at ``reset``). A memory
changed in the config itself is still refused, naming the key.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from freqtrade.enums import RunMode

from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.strategy import MetaStrategyBase


class _Meta(MetaStrategyBase):
    pass


def _strategy(tmp_path: Path, file_params: dict[str, Any],
              section: dict[str, Any] | None = None) -> _Meta:
    s = _Meta({"runmode": RunMode.DRY_RUN, "dry_run": True, "timeframe": "1h",
               "stake_currency": "USDT", "user_data_dir": str(tmp_path), "fee": 0.001,
               "metastrategy": section or {}})
    s._ft_params_from_file = file_params
    return s


def test_an_installed_half_life_keeps_the_stored_memory_and_applies_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    saved = _strategy(tmp_path, {})
    doc = {"learner": {"learner": saved._new_learner().to_dict(), "tracker": {}}}
    installed = _strategy(tmp_path, {"fullinfo": {"fullinfo_half_life": 700,
                                                  "fullinfo_min_signals": 50}})
    assert installed.full_info is not None and installed.full_info.half_life == 700
    with caplog.at_level(logging.WARNING):
        learner = installed._pretrained_learner(doc, "store")
    assert learner is not None
    assert learner.config.half_life == saved.full_info.half_life  # type: ignore[union-attr]
    assert learner.config.min_signals == 50
    assert "keep their own memory" in caplog.text and "half_life 700" in caplog.text
    # a fresh learner (no stored statistics) learns with the file's half-life
    assert installed._new_learner().config.half_life == 700


def test_a_half_life_changed_in_the_config_is_still_refused(tmp_path: Path) -> None:
    saved = _strategy(tmp_path, {})
    doc = {"learner": {"learner": saved._new_learner().to_dict(), "tracker": {}}}
    changed = _strategy(tmp_path, {}, {"half_life": 700})
    with pytest.raises(MetaStrategyError, match=r"metastrategy\.estimator: the stored learner "
                                                r"was learned with estimator"):
        changed._pretrained_learner(doc, "store")

"""The live full-information learner and its store document, in process (a real SQLite
store): a stale save reloads, a stored learner that does not fit the config is never
overwritten, the decision counts and the tracker survive a reload."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from freqtrade.enums import RunMode

from freqtrade_metastrategy.store import SqlStore
from freqtrade_metastrategy.strategy import MetaStrategyBase


class _Meta(MetaStrategyBase):
    pass


def live(tmp_path: Path, **section: object) -> _Meta:
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    return _Meta({"runmode": RunMode.DRY_RUN, "timeframe": "1h", "stake_currency": "USDT",
                  "user_data_dir": str(tmp_path),
                  "metastrategy": {"store_url": url, "min_signals": 1, **section}})


def _teach(s: _Meta) -> None:
    """Two learned signals (as _track_live hands them over) and a changed tracker."""
    assert s.learner is not None
    x = s.learner.design(None if not s.learner.features else
                         np.zeros(len(s.learner.features)), "long", "trend_up")
    k = len(s.learner.profiles)
    for i in range(2):
        s.learner.add(("BTC/USDT", i, "long"), i + 1, x, np.full(k, -0.5 + i))
    s.learner.advance(10)
    s._seen_through["BTC/USDT"] = 10
    s.decision_counts["trend_up"] = [3, 1]
    s._dirty = True


def _saved(s: _Meta, store: SqlStore) -> None:
    """The bot's start, two learned signals, its next loop's save."""
    s._load_live_learner(store)
    _teach(s)
    s._save_live_learner(store)


def test_saved_learner_reloads_with_its_tracker(tmp_path: Path) -> None:
    s = live(tmp_path)
    with SqlStore(f"sqlite:///{tmp_path / 'q.sqlite'}") as store:
        _saved(s, store)
        doc, gen = store.learner_state()
        assert gen == 1 and doc is not None and doc["learner"]["released"] == 2
        again = live(tmp_path)
        again._load_live_learner(store)
        assert again.learner is not None and again.learner.released == 2
        assert again._seen_through == {"BTC/USDT": 10}
        assert again.decision_counts == {"trend_up": [3, 1]}
        np.testing.assert_array_equal(again.learner.means.values(), s.learner.means.values())


def test_a_stale_save_reloads_instead_of_overwriting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = live(tmp_path)
    with SqlStore(f"sqlite:///{tmp_path / 'q.sqlite'}") as store:
        _saved(s, store)
        store.reset()  # another process: `freqtrade-metastrategy reset`
        _teach(s)
        with caplog.at_level(logging.WARNING):
            s._save_live_learner(store)
        assert "reloading the full-information learner" in caplog.text
        assert store.learner_state()[0] is None  # the reset stays
        assert s.learner is not None and s.learner.released == 0


def test_a_stored_learner_that_does_not_fit_is_never_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = live(tmp_path)
    with SqlStore(f"sqlite:///{tmp_path / 'q.sqlite'}") as store:
        _saved(s, store)
        # another process imports a learner learned with another half-life
        other = live(tmp_path / "other", half_life=50)
        with SqlStore(f"sqlite:///{tmp_path / 'other.sqlite'}") as scratch:
            other._load_live_learner(scratch)
        _teach(other)
        assert other.learner is not None
        imported = {"learner": other.learner.to_dict(),
                    "tracker": {"watching": [], "seen_through": {}, "counts": {}}}
        store.import_dict({**store.export_dict(), "learner": imported}, replace=True)
        _, gen = store.learner_state()
        _teach(s)
        with caplog.at_level(logging.WARNING):
            s._save_live_learner(store)
            s._dirty = True
            s._save_live_learner(store)  # and the next loop's save does not write either
        assert "cannot be used" in caplog.text and "metastrategy.estimator" in caplog.text
        doc, gen_after = store.learner_state()
        assert gen_after == gen and doc == imported
        # a restart with that config stops with the key to change
        with pytest.raises(Exception, match=r"metastrategy\.estimator"):
            live(tmp_path)._load_live_learner(store)


def test_a_stored_learner_with_another_reward_unit_is_refused(tmp_path: Path) -> None:
    s = live(tmp_path)
    with SqlStore(f"sqlite:///{tmp_path / 'q.sqlite'}") as store:
        _saved(s, store)
        with pytest.raises(Exception, match=r"metastrategy\.reward_unit"):
            live(tmp_path, reward_unit="ret_pct")._load_live_learner(store)

"""Exit plans: levels, stop by stage, partials due, R, for both sides."""

from __future__ import annotations

import pytest

from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.exitplan import TradePlan
from freqtrade_metastrategy.profiles import ProfileRegistry, get_strategy_profile

SIDES = ["long", "short"]


def plan(side: str, profile: str = "ultra_aggressive", entry: float = 200.0,
         r: float = 4.0) -> TradePlan:
    return TradePlan(get_strategy_profile(profile), is_short=side == "short", entry_price=entry,
                     r_unit=r)


@pytest.mark.parametrize("side", SIDES)
def test_levels_mirror_around_entry(side: str) -> None:
    p = plan(side)
    s = 1 if side == "long" else -1
    assert p.initial_stop == 200.0 - s * 4.0
    assert p.tp_prices == (200.0 + s * 12.0, 200.0 + s * 20.0, 200.0 + s * 32.0)


@pytest.mark.parametrize("side", SIDES)
def test_stop_follows_the_stages(side: str) -> None:
    p = plan(side)
    s = 1 if side == "long" else -1
    best = 200.0 + s * 25.0
    assert p.stop_price(0, best) == p.initial_stop            # before TP1: fixed
    assert p.stop_price(1, best) == 200.0                     # after TP1: breakeven
    assert p.stop_price(2, best) == best - s * 1.0 * 4.0      # after TP2: trail 1R
    # the trail never gives back the breakeven
    assert p.stop_price(2, 200.0 + s * 2.0) == 200.0


def test_rules_can_be_disabled_or_offset() -> None:
    reg = ProfileRegistry.from_config({
        "no_be": {"base": "moderate", "breakeven_after_tp": 0, "trail_after_tp": 0},
        "be_plus": {"base": "moderate", "breakeven_offset_r": 0.25, "trail_after_tp": 1},
    })
    p = TradePlan(reg["no_be"], is_short=False, entry_price=100.0, r_unit=2.0)
    assert p.stop_price(2, 150.0) == p.initial_stop
    q = TradePlan(reg["be_plus"], is_short=False, entry_price=100.0, r_unit=2.0)
    assert q.stop_price(1, 101.0) == 100.5                    # offset beats a short trail
    assert q.stop_price(1, 110.0) == 108.0                    # then the trail takes over


@pytest.mark.parametrize("side", SIDES)
def test_partials_due(side: str) -> None:
    p = plan(side, "scalp", entry=100.0, r=1.0)               # TPs at 1.2, 1.8, 2.5 R
    s = 1 if side == "long" else -1
    assert p.partials_due(0, 100.0 + s * 1.1) == (0, 0.0)
    assert p.partials_due(0, 100.0 + s * 1.2) == (1, 0.6)
    assert p.partials_due(0, 100.0 + s * 2.0) == (2, pytest.approx(0.9))
    assert p.partials_due(1, 100.0 + s * 2.0) == (2, 0.3)
    assert p.partials_due(2, 100.0 + s * 9.0) == (2, 0.0)    # TP3 is not a partial


@pytest.mark.parametrize(("side", "exit_price", "expected"),
                         [("long", 96.0, -1.0), ("long", 112.0, 3.0),
                          ("short", 104.0, -1.0), ("short", 88.0, 3.0)])
def test_r_multiple_is_signed_per_side(side: str, exit_price: float, expected: float) -> None:
    p = plan(side, entry=100.0, r=4.0)
    amount = 2.5
    pnl = amount * (exit_price - 100.0) * (1 if side == "long" else -1)
    assert p.r_multiple(pnl, amount) == pytest.approx(expected)


def test_invalid_inputs() -> None:
    with pytest.raises(MetaStrategyError, match="r_unit"):
        plan("long", r=0.0)
    with pytest.raises(MetaStrategyError, match="entry_price"):
        plan("long", entry=float("nan"))
    with pytest.raises(MetaStrategyError, match="amount"):
        plan("long").r_multiple(1.0, 0.0)

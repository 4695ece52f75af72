"""The evaluation package's seams: outcome table, specs, runners, hindsight, replay result."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import freqtrade_metastrategy.evaluation as evaluation_pkg
from freqtrade_metastrategy.errors import EvaluationError, MetaStrategyError
from freqtrade_metastrategy.evaluation.hindsight import (
    HINDSIGHT,
    best_profiles,
    hindsight_choices,
    train_best,
)
from freqtrade_metastrategy.evaluation.ope import OPEError
from freqtrade_metastrategy.evaluation.outcomes import (
    OutcomeTable,
    check_unit,
    ns_to_datetime,
    ns_to_times,
    synthetic_outcomes,
    to_utc_timestamp,
)
from freqtrade_metastrategy.evaluation.replay import replay, result_from_runners
from freqtrade_metastrategy.evaluation.runners import (
    FixedProfileRunner,
    FullInfoRunner,
    LearnerRunner,
    UniformRandomRunner,
    build_runners,
)
from freqtrade_metastrategy.evaluation.specs import (
    FixedProfileSpec,
    LearnerSpec,
    UniformRandomSpec,
    WalkForwardStaticSpec,
    check_policy_names,
)
from freqtrade_metastrategy.selector import SelectorConfig

PACKAGE = Path(evaluation_pkg.__file__).parent


def test_evaluation_error_lives_with_the_other_errors() -> None:
    assert evaluation_pkg.EvaluationError is EvaluationError
    assert issubclass(EvaluationError, MetaStrategyError)
    assert issubclass(EvaluationError, ValueError)
    assert issubclass(OPEError, EvaluationError)


def test_concat_of_consecutive_subsets_is_the_table() -> None:
    table = OutcomeTable.from_frame(synthetic_outcomes(n=30, seed=4))
    first = np.arange(len(table)) < 12
    joined = OutcomeTable.concat([table.subset(first), table.subset(~first)])
    pd.testing.assert_frame_equal(joined.entries, table.entries)
    assert joined.profiles == table.profiles
    assert joined.units == table.units
    for u in table.units:
        np.testing.assert_array_equal(joined.rewards[u], table.rewards[u])
    np.testing.assert_array_equal(joined.exit_ns, table.exit_ns)
    np.testing.assert_array_equal(joined.exit_reason, table.exit_reason)
    np.testing.assert_array_equal(joined.signal_ns, table.signal_ns)


def test_time_helpers_round_trip() -> None:
    ts = to_utc_timestamp("2024-03-01 12:30")
    assert ns_to_datetime(ts.value) == ts.to_pydatetime()
    times = ns_to_times(np.array([ts.value, ts.value + 3_600_000_000_000], dtype=np.int64))
    assert str(times.tz) == "UTC"
    assert list(times) == [ts, ts + pd.Timedelta("1h")]
    assert to_utc_timestamp(pd.Timestamp("2024-03-01 13:30", tz="Europe/Paris")) == ts
    with pytest.raises(EvaluationError, match="missing time"):
        to_utc_timestamp(pd.NaT)
    check_unit("ret_pct")
    with pytest.raises(EvaluationError, match="unit 'pips'"):
        check_unit("pips")


def test_policy_names_are_checked() -> None:
    check_policy_names(["static:scalp", "random"])
    with pytest.raises(EvaluationError, match="used twice"):
        check_policy_names(["random", "random"])
    for name in HINDSIGHT:
        with pytest.raises(EvaluationError, match="reserved"):
            check_policy_names([name])


def test_build_runners_then_result_is_the_replay() -> None:
    df = synthetic_outcomes(n=80, seed=5)
    table = OutcomeTable.from_frame(df)
    specs = [FixedProfileSpec("moderate"), UniformRandomSpec(), WalkForwardStaticSpec(),
             LearnerSpec("eps", SelectorConfig(epsilon=0.3))]
    _, runners = build_runners(table, specs, unit="r_risk", seed=9, profiles=None)
    assert [type(r) for r in runners] == [FixedProfileRunner, UniformRandomRunner,
                                         FullInfoRunner, LearnerRunner]
    for r in runners:
        r.run(range(len(table)))
    built = result_from_runners(table, "r_risk", 9, runners)
    ref = replay(df, specs, unit="r_risk", seed=9, hindsight=False)
    assert built.policies == ref.policies
    assert set(built.selectors) == {"eps"}
    pd.testing.assert_frame_equal(built.decisions(), ref.decisions())
    # the result holds copies: running on does not change it
    before = built.choice["random"].copy()
    runners[1].trace.choice[:] = -1
    np.testing.assert_array_equal(built.choice["random"], before)


def test_hindsight_ties_go_to_the_first_profile() -> None:
    rewards = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.5]])
    regimes = np.array(["a", "b"], dtype=object)
    assert best_profiles(rewards, regimes) == (0, {"a": 0, "b": 2})


def test_train_best_on_everything_closed_is_the_hindsight_choice() -> None:
    table = OutcomeTable.from_frame(synthetic_outcomes(n=60, seed=8))
    choices, info = hindsight_choices(table, "r_atr")
    everything = np.ones(len(table), dtype=bool)
    best, per_regime, used = train_best(table, "r_atr", everything,
                                        int(table.close_ns.max()), default=-1)
    assert used == len(table)
    assert table.profiles[best] == info["best_static"]["profile"]
    assert bool((choices["best_static"] == best).all())
    assert {r: table.profiles[j] for r, j in per_regime.items()} == \
        info["oracle_regime"]["mapping"]
    assert train_best(table, "r_atr", everything, int(table.close_ns.min()) - 1,
                      default=3) == (3, {}, 0)


def _evaluation_imports() -> dict[str, list[tuple[str, str]]]:
    """module -> [(imported module, name)] for the package's imports of its own modules."""
    out: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        found = out.setdefault(path.stem, [])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("freqtrade_metastrategy.evaluation."):
                found.extend((node.module.rsplit(".", 1)[1], a.name) for a in node.names)
    return out


def test_no_private_name_crosses_modules_and_no_cycle() -> None:
    imports = _evaluation_imports()
    private = [(m, src, name) for m, items in imports.items() for src, name in items
               if name.startswith("_")]
    assert private == []
    graph = {m: {src for src, _ in items} for m, items in imports.items()}
    done: set[str] = set()

    def visit(mod: str, path: tuple[str, ...]) -> None:
        assert mod not in path, f"import cycle: {' -> '.join((*path, mod))}"
        if mod in done:
            return
        for dep in graph.get(mod, ()):
            visit(dep, (*path, mod))
        done.add(mod)

    for mod in graph:
        visit(mod, ())
    # the layers: the table knows nothing of policies, specs nothing of runners
    assert graph["outcomes"] == set()
    assert graph["specs"] <= {"hindsight"}
    assert "replay" not in graph["runners"]

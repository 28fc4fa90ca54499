"""Benches decide their exit status by what they judged (bench/common.py, Verdicts), so that
`make bench` fails on a missed goal or a wrong result, not only on a crash."""

from __future__ import annotations

import ast

import pytest

from bench.common import Verdicts
from tests.paths import REPO

BENCH = REPO / "bench"
# Not benches: helpers other benches import.
HELPERS = {"common.py", "__init__.py"}
# Its one check is migrate-db's own (counts compared, exit 2 when they differ): a failed copy
# ends the bench with SystemExit and migrate-db's message, so exit 1.
OWN_EXIT = {"migrate_db.py"}


def test_every_check_passed_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = Verdicts()
    assert verdicts.check("goal: fast", True, "1.0 s")
    assert verdicts.check("check: none twice", True)
    assert verdicts.exit_code() == 0
    out = capsys.readouterr().out
    assert "[PASS] goal: fast: 1.0 s" in out
    assert "verdicts: all 2 passed" in out


def test_one_missed_goal_exits_1_and_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = Verdicts()
    verdicts.check("goal: fast", True)
    assert not verdicts.check("goal: < 10 s", False, "11.2 s")
    verdicts.check("check: identical", True)
    assert verdicts.exit_code() == 1
    out = capsys.readouterr().out
    assert "[FAIL] goal: < 10 s: 11.2 s" in out
    assert "verdicts: 1 of 3 FAILED: goal: < 10 s" in out


def _bench_scripts() -> list[str]:
    return sorted(
        path.name
        for path in BENCH.glob("*.py")
        if path.name not in HELPERS | OWN_EXIT and "__main__" in path.read_text(encoding="utf-8")
    )


@pytest.mark.parametrize("name", _bench_scripts())
def test_every_bench_returns_its_verdicts(name: str) -> None:
    """Each bench script judges with Verdicts and exits with exit_code()'s status."""
    tree = ast.parse((BENCH / name).read_text(encoding="utf-8"))
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "Verdicts" in names, f"bench/{name} does not judge with Verdicts"
    assert {"check", "exit_code"} <= calls, f"bench/{name} ignores its verdicts' exit status"

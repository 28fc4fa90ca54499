"""The layers of bot/ (README, "Layers") and the size of its functions, checked on the code.

Why a short `ast` walk rather than import-linter: the rules fit in one table below, the
walk sees every import (at module level, inside functions, under TYPE_CHECKING: each is a
dependency of the design), and it needs no tool or configuration beside the tests.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"

# Lowest first. A module may import modules of its own layer or of a lower one; a module
# belongs to the first layer with a prefix that matches its name.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("bot.clock", "bot.config", "bot.errors", "bot.logs", "bot.text")),
    ("texts", ("bot.i18n",)),
    (
        "domain",
        (
            "bot.models",
            "bot.filters",
            "bot.routing",
            "bot.summary",
            "bot.digests.schedule",
            "bot.digests.render",
            "bot.feeds.entry",
            "bot.feeds.parse",
            "bot.feeds.tree_reader",
            "bot.feeds.plain_reader",
            "bot.feeds.feedparser_names",
            "bot.feeds.fetch",
            "bot.feeds.discover",
            "bot.feeds.schedule",
            "bot.feeds.freshness",
            "bot.listener",
            "bot.metrics",
            "bot.opml",
            "bot.delivery.format",
            "bot.delivery.outcome",
            "bot.delivery.pacing",
            "bot.delivery.transport",
        ),
    ),
    ("store", ("bot.store",)),
    (
        "application",
        (
            "bot.feeds.record",
            "bot.feeds.pipeline",
            "bot.feeds.poller",
            "bot.feeds.websub",
            "bot.usecases",
            "bot.delivery",
            "bot.digests",
            "bot.preview",
            "bot.reports",
            "bot.health",
        ),
    ),
    ("runtime", ("bot.runtime",)),
    ("telegram", ("bot.telegram",)),
    ("entry points", ("bot.cli", "bot.__main__")),
]
# Packages whose __init__ only names what their modules hold.
FACES = {"bot", "bot.delivery", "bot.feeds", "bot.store", "bot.telegram", "bot.usecases"}
MAX_FUNCTION_LINES = 50


def module_name(path: Path) -> str:
    parts = path.relative_to(BOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(BOT.rglob("*.py"))}


def layer_of(module: str) -> int:
    for number, (_name, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to README)")


def imports_of(module: str, tree: ast.Module, known: set[str]) -> Iterator[str]:
    """The bot modules `module` imports (a name from a package counts as its module)."""
    package = module if module in FACES else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("bot") and name != module and name not in FACES:
                yield name


def dependencies() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees)
    return {name: set(imports_of(name, tree, known)) for name, tree in trees.items()}


def test_every_import_goes_down_the_layers() -> None:
    broken = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in dependencies().items()
        if module not in FACES
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert not broken, "\n".join(broken)


def test_no_import_cycle_inside_bot() -> None:
    graph = dependencies()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_no_function_is_longer_than_fifty_lines() -> None:
    long = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - first + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, "\n".join(sorted(long))


def test_the_checks_see_a_broken_rule() -> None:
    """The walk finds imports in every form (else the tests above could not fail)."""
    tree = ast.parse(
        "import bot.cli\nfrom bot.telegram import app\nfrom ..store import db\n"
        "def f():\n    from bot.runtime import Runtime\n"
    )
    known = {"bot.cli", "bot.telegram.app", "bot.store.db", "bot.runtime"}
    found = set(imports_of("bot.feeds.parse", tree, known))
    assert found == known
    assert layer_of("bot.feeds.parse") < layer_of("bot.telegram.app")

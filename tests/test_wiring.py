"""How the parts are put together, checked on the code: the SQL stays in the store, the CLI
reuses the runtime, handlers reach it through the typed context (bot/telegram/context.py)."""

from __future__ import annotations

import ast
import re

from tests.test_architecture import imports_of, modules

# A statement as the store writes them (upper-case keywords), not a sentence that starts
# with "Update" or "Create".
SQL = re.compile(r"\s*(SELECT .* FROM|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE |PRAGMA )")


def sql_in(tree: ast.AST) -> list[tuple[int, str]]:
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value)
    ]


def test_no_sql_outside_the_store() -> None:
    found = [
        f"{name}:{line}: {text[:50]!r}"
        for name, tree in modules().items()
        if not name.startswith("bot.store")
        for line, text in sql_in(tree)
    ]
    assert not found, "\n".join(found)


def function_imports(tree: ast.Module) -> dict[str, set[str]]:
    """The bot modules each top-level function imports ("" for the module's own imports)."""
    known = set(modules())
    found: dict[str, set[str]] = {}
    for node in tree.body:
        owner = node.name if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else ""
        body = ast.Module(body=[node], type_ignores=[])
        found.setdefault(owner, set()).update(imports_of("bot.cli", body, known))
    return found


def test_the_cli_reuses_the_runtime_and_reaches_telegram_only_to_run() -> None:
    by_function = function_imports(modules()["bot.cli"])
    telegram = {
        function
        for function, targets in by_function.items()
        if any(target.startswith("bot.telegram") for target in targets)
    }
    assert telegram == {"cmd_run"}
    # No wiring of its own: the pipeline, fetcher and use cases come built from bot.runtime.
    own_wiring = {
        target
        for targets in by_function.values()
        for target in targets
        if target.startswith(("bot.feeds.", "bot.usecases.", "bot.routing", "bot.filters"))
    }
    assert not own_wiring
    assert "bot.runtime" in by_function["import_into"]


def reads_bot_data_by_key(node: ast.AST) -> bool:
    """bot_data["runtime"], bot_data.get(...), bot_data.setdefault(...)."""
    if isinstance(node, ast.Subscript):
        target = node.value
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        target = node.func.value if node.func.attr in ("get", "setdefault", "pop") else None
    else:
        return False
    return isinstance(target, ast.Attribute) and target.attr == "bot_data"


def test_handlers_and_jobs_reach_the_runtime_through_the_typed_context() -> None:
    found = [
        f"{name}:{node.lineno}"
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if reads_bot_data_by_key(node)
    ]
    assert not found, "bot_data read by key (use BotContext.runtime, BotData):\n" + "\n".join(found)


def test_the_checks_see_what_they_look_for() -> None:
    tree = ast.parse(
        "x = context.application.bot_data['runtime']\n"
        "y = app.bot_data.setdefault('importing', set())\n"
        "z = context.bot_data.commands\n"
        "def f():\n"
        "    'Update the feed, then create its row.'\n"
        "    return 'SELECT 1 FROM t'\n"
    )
    assert sum(reads_bot_data_by_key(node) for node in ast.walk(tree)) == 2
    assert [text for _, text in sql_in(tree)] == ["SELECT 1 FROM t"]

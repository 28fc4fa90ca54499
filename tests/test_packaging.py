"""The Docker image's build, without a Docker engine: install the package from exactly
what the Dockerfile copies and run the Dockerfile's own check on it.

The Dockerfile is read, not restated, so the test follows it when it changes: the build
stage's COPY lines say what goes into the build folder, and its `python -c` check is run
as written, from /, so the source folder cannot stand in for the installed package.
Offline: the package is built with the test environment's setuptools (no build isolation,
no index), and its dependencies are the test environment's own.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import packages_distributions, version
from pathlib import Path

from bot.config import DEFAULTS_PATH
from tests.paths import REPO

DOCKERFILE = REPO / "Dockerfile"
# What .dockerignore keeps out of the build context that could sit inside bot/.
BUILD_CONTEXT_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


@dataclass(frozen=True)
class BuildStage:
    workdir: str
    copies: list[tuple[list[str], str]]  # (sources, destination) of each COPY
    check: str  # the Python code of the stage's `python -c` check


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined, as Docker reads them."""
    joined = re.sub(r"\\\n", "", dockerfile)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def build_stage(dockerfile: str) -> BuildStage:
    """The first stage (FROM … AS build) up to the next FROM."""
    workdir, copies, check = "/", [], None
    stages = 0
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            stages += 1
            if stages > 1:
                break
        elif keyword == "WORKDIR":
            workdir = arguments
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            assert not any(s.startswith("--") for s in sources), arguments
            copies.append((sources, destination))
        elif keyword == "RUN" and " -c " in arguments:
            words = shlex.split(arguments)
            check = words[words.index("-c") + 1]
    assert check is not None, "the build stage has no `python -c` check"
    return BuildStage(workdir, copies, check)


def copy_build_context(stage: BuildStage, into: Path) -> None:
    """Copy each COPY's sources from the repository as Docker would: symlinks stay links."""
    for sources, destination in stage.copies:
        target = into / destination
        for source in sources:
            origin = REPO / source
            into_folder = len(sources) > 1 or destination.endswith("/")
            place = target / origin.name if into_folder else target
            place.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, place, symlinks=True, ignore=BUILD_CONTEXT_IGNORED)
            else:
                shutil.copy2(origin, place, follow_symlinks=False)


def test_the_dockerfile_check_passes_on_a_package_built_from_what_it_copies(
    tmp_path: Path,
) -> None:
    stage = build_stage(DOCKERFILE.read_text())
    source = tmp_path / "src"
    copy_build_context(stage, source)
    installed = tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            *("-m", "pip", "install", "--quiet", "--no-deps", "--no-index"),
            # Offline: the test environment's setuptools builds it (pyproject.toml [test]).
            "--no-build-isolation",
            *("--target", str(installed), str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, (
        f"{build.stderr}\n(setuptools {version('setuptools')} here; pyproject.toml [test] "
        "asks for a newer one: pip install -e '.[test]')"
    )
    # The check as the Dockerfile runs it, from /, then where `bot` was imported from.
    environ = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-c", f"{stage.check}\nimport bot; print(bot.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env=environ,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(installed)


def test_the_built_in_defaults_are_a_real_file_that_config_names_too() -> None:
    # The package must carry the file itself; config/default.toml (the path the docs name)
    # is the convenience link, not the other way round.
    assert DEFAULTS_PATH.is_file() and not DEFAULTS_PATH.is_symlink()
    assert (REPO / "config" / "default.toml").read_bytes() == DEFAULTS_PATH.read_bytes()


def imported_libraries() -> set[str]:
    """The top-level names bot/ imports that are neither the standard library nor bot."""
    found = set()
    for path in (REPO / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__", "bot"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_library_the_bot_imports_is_installed_with_it() -> None:
    """`pip install .` (the image's build) brings every library bot/ imports: a library only
    in an extra would make the installed bot fail at its first import (asyncpg is imported
    by bot.store whichever backend runs)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {
        canonical(re.split(r"[\s\[<>=~!;]", spec, maxsplit=1)[0])
        for spec in project["dependencies"]
    }
    providers = packages_distributions()
    missing = {
        library: providers.get(library, ["?"])
        for library in imported_libraries()
        if not declared & {canonical(name) for name in providers.get(library, [])}
    }
    assert not missing, f"imported by bot/ but not in [project] dependencies: {missing}"

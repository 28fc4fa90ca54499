"""Where the tests and benchmarks find files: the repository, its fixtures, and ../shared.

../shared (the product contract, real-world feeds, the seed story, the Bot API spec) lies
beside the repository: CI clones the repository with it beside, and each worktree here has
one beside it too. Tests that need it skip when it is missing; nothing else in tests/ or
bench/ spells its path. Benchmarks import this module too (they put the repository on
sys.path first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[1]
SHARED: Final = REPO.parent / "shared"
FIXTURES: Final = REPO / "tests" / "fixtures"

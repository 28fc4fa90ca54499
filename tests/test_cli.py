"""The command line as a user meets it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.databases import POSTGRESQL_URL
from tests.paths import FIXTURES

SEED_SUMMARY_START = "克里姆林宫周三（2月26日）表示"


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEWS_NOTIFIER_", "TELEGRAM_"))
    }
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        cwd=cwd,
    )


def test_preview_prints_the_alert_the_bot_would_send() -> None:
    result = cli("preview", str(FIXTURES / "feeds" / "seed_feedx_rss2.xml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        '<b><a href="https://www.voachinese.com/a/kremlin-says-russia-and-us-are-preparing-more'
        '-talks-20250226/7988895.html">克里姆林宫称正在准备俄美专家级会谈，为特普峰会铺路</a></b>'
    )
    assert SEED_SUMMARY_START in result.stdout and "资料照" not in result.stdout


def test_preview_limit_and_errors() -> None:
    result = cli(
        "preview", str(FIXTURES / "feeds" / "en_hackernews_frontpage_rss2.xml"), "--limit", "2"
    )
    assert result.returncode == 0 and result.stdout.count("<b>") == 2
    result = cli("preview", "ftp://example.com/feed.xml")
    assert result.returncode == 1 and "Only http:// and https://" in result.stderr
    for missing in ("/nonexistent/feed.xml", "./no-such.rss", "feeds/no-such.xml"):
        result = cli("preview", missing)
        assert result.returncode == 1 and f"There is no file {missing}." in result.stderr


def test_run_without_token_exits_2_with_one_line(tmp_path: Path) -> None:
    result = cli("run", env={"NEWS_NOTIFIER_DATABASE": str(tmp_path / "x.sqlite3")})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "TELEGRAM_BOT_TOKEN" in result.stderr


def test_bad_setting_exits_2_naming_it() -> None:
    result = cli("run", env={"NEWS_NOTIFIER_POLL_INTERVAL": "soon"})
    assert result.returncode == 2
    assert "poll.interval (NEWS_NOTIFIER_POLL_INTERVAL)" in result.stderr


def test_no_command_prints_help() -> None:
    result = cli()
    assert result.returncode == 2 and "preview" in result.stdout


def test_run_with_a_database_url_exits_2_with_one_line_and_creates_nothing(
    tmp_path: Path,
) -> None:
    # A token and an unreachable Bot API: only the database setting can stop it with 2.
    result = cli(
        "run",
        env={
            "NEWS_NOTIFIER_DATABASE": "mysql://bot:s3cret@db.internal/news",
            "TELEGRAM_BOT_TOKEN": "123:abc",
            "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot",
        },
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "NEWS_NOTIFIER_DATABASE" in line
    assert "a file path for SQLite" in line and "s3cret" not in line
    assert list(tmp_path.iterdir()) == []  # no folder named "mysql:"


def test_run_refused_by_postgresql_exits_2_with_one_line(tmp_path: Path) -> None:
    """A database name or role the server does not know will not start to exist by itself:
    one line naming what PostgreSQL said, exit 2, no retrying and no traceback."""
    server = urlsplit(POSTGRESQL_URL)
    for wrong, said in (
        ("/news_notifier_no_such_database", 'database "news_notifier_no_such_database"'),
        ("/" + server.path.lstrip("/"), 'role "news_notifier_nobody"'),
    ):
        netloc = server.netloc.rsplit("@", 1)[-1]
        if "role" in said:
            netloc = f"news_notifier_nobody@{netloc}"
        url = urlunsplit(server._replace(netloc=netloc, path=wrong, query=""))
        result = cli(
            "run",
            env={
                "NEWS_NOTIFIER_DATABASE": url,
                "TELEGRAM_BOT_TOKEN": "123:abc",
                "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot",
            },
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stderr
        line = result.stderr.strip()
        assert "\n" not in line and "refused the bot" in line and said in line, line


def test_run_waits_for_an_unreachable_postgresql_saying_so_in_one_line_a_try(
    tmp_path: Path,
) -> None:
    """A container may start before its database: each attempt is one log line, no
    traceback, and a stop meanwhile exits 0."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEWS_NOTIFIER_", "TELEGRAM_"))
    }
    environ.update(
        NEWS_NOTIFIER_DATABASE="postgresql://root@127.0.0.1:9/news",  # the discard port
        TELEGRAM_BOT_TOKEN="123:abc",
        TELEGRAM_API_BASE_URL="http://127.0.0.1:9/bot",
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environ,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        lines: list[str] = []
        assert child.stdout is not None
        while time.monotonic() < deadline and len(lines) < 2:
            line = child.stdout.readline()
            if "event=database_unreachable" in line:
                lines.append(line)
        child.send_signal(signal.SIGTERM)
        rest, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    assert len(lines) == 2 and "attempt=2" in lines[1], lines
    assert child.returncode == 0
    assert "Traceback" not in rest, rest


def test_preview_of_a_file_with_no_stories_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.xml"
    empty.write_text('<rss version="2.0"><channel><title>T</title></channel></rss>')
    result = cli("preview", str(empty))
    assert result.returncode == 1 and result.stdout == ""
    assert "holds no stories to show" in result.stderr and str(empty) in result.stderr

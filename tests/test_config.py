"""Settings: defaults < user TOML < environment; a bad value is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DATABASE_ACCEPTED, ConfigError, load_settings


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings(None, {})
    assert settings.poll.interval == 300
    assert settings.telegram.api_base_url == "https://api.telegram.org/bot"
    assert settings.database.path == "data/news-notifier.sqlite3"
    assert settings.digest.timezone == "UTC"
    assert settings.fetch.max_body_bytes == 5 * 1024 * 1024
    assert settings.fetch.allow_private_networks is False
    assert settings.dedupe.archive_window_days == 7
    assert settings.telegram.allowed_users == ()


def test_user_file_overrides_defaults_and_environment_overrides_both(tmp_path: Path) -> None:
    user = tmp_path / "settings.toml"
    user.write_text('[poll]\ninterval = 120\n[digest]\ntimezone = "Asia/Shanghai"\n')
    settings = load_settings(user, {})
    assert (settings.poll.interval, settings.digest.timezone) == (120, "Asia/Shanghai")
    settings = load_settings(
        None,
        {
            "NEWS_NOTIFIER_CONFIG": str(user),
            "NEWS_NOTIFIER_POLL_INTERVAL": "1",
            "NEWS_NOTIFIER_ADMINS": "12, 34",
            "NEWS_NOTIFIER_ALLOWED_USERS": "",
            "NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS": "1",
            "TELEGRAM_BOT_TOKEN": "1:abc",
        },
    )
    assert settings.poll.interval == 1
    assert settings.digest.timezone == "Asia/Shanghai"
    assert settings.telegram.admins == (12, 34)
    assert settings.telegram.allowed_users == ()
    assert settings.fetch.allow_private_networks is True
    assert settings.telegram.token == "1:abc"


def test_a_retired_setting_in_a_user_file_is_ignored_not_refused(tmp_path: Path) -> None:
    """digest.max_stories_per_digest_feed capped digest-mode feeds until they came to list
    every story: a settings file written for that version still starts the bot, and an
    unknown setting beside it is still refused."""
    user = tmp_path / "settings.toml"
    user.write_text("[digest]\nmax_stories_per_digest_feed = 25\nmax_stories_per_feed = 7\n")
    assert load_settings(user, {}).digest.max_stories_per_feed == 7
    user.write_text("[digest]\nmax_stories_per_digest_feeds = 25\n")
    with pytest.raises(ConfigError, match=r"unknown setting digest\.max_stories_per_digest_feeds"):
        load_settings(user, {})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"NEWS_NOTIFIER_POLL_INTERVAL": "soon"},
            "setting poll.interval (NEWS_NOTIFIER_POLL_INTERVAL) is 'soon'; allowed: a whole",
        ),
        ({"NEWS_NOTIFIER_POLL_INTERVAL": "0"}, "poll.interval"),
        ({"NEWS_NOTIFIER_TIMEZONE": "Mars/Olympus"}, "allowed: an IANA time zone name"),
        ({"NEWS_NOTIFIER_ADMINS": "alice"}, "Telegram user ids"),
        ({"NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS": "maybe"}, "1 or 0"),
        ({"TELEGRAM_API_BASE_URL": "api.telegram.org"}, "a URL starting with http://"),
        ({"NEWS_NOTIFIER_DATABASE": " "}, "database.path"),
    ],
)
def test_bad_values_stop_with_one_line(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, environ)
    message = str(error.value)
    assert expected in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[poll]\ninterval = 'fast'\n", "setting poll.interval is 'fast'"),
        ("[pol]\ninterval = 1\n", "unknown section [pol]"),
        ("[poll]\nintervall = 1\n", "unknown setting poll.intervall"),
        ("[poll\n", "not valid TOML"),
        ("[log]\nlevel = 'LOUD'\n", "one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_bad_user_files_stop_with_one_line(tmp_path: Path, text: str, expected: str) -> None:
    user = tmp_path / "settings.toml"
    user.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(user, {})
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_missing_user_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.toml", {})


def test_every_setting_in_default_toml_is_documented() -> None:
    """Each setting sits in a block of lines that opens with a comment explaining it."""
    from bot.config import DEFAULTS_PATH

    lines = DEFAULTS_PATH.read_text().splitlines()
    for index, line in enumerate(lines):
        if "=" not in line or line.startswith("#"):
            continue
        block = []
        for previous in reversed(lines[:index]):
            if not previous.strip() or previous.startswith("["):
                break
            block.append(previous)
        assert any(b.startswith("#") for b in block), f"undocumented: {line}"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot@db.internal",  # no database named
        "postgresql:///news",  # no host
        "mysql://bot@db.internal/news",
        "sqlite:///data/news.sqlite3",
        "sqlite://data/news.sqlite3",
        "file://data/news.sqlite3",
    ],
)
def test_a_database_url_is_refused_naming_what_is_accepted(url: str) -> None:
    # Taken as a file path, "mysql://…" would silently become a SQLite file in a folder
    # named "mysql:". Only PostgreSQL URLs, with a host and a database, are databases.
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"NEWS_NOTIFIER_DATABASE": url})
    message = str(error.value)
    assert message.startswith("setting database.path (NEWS_NOTIFIER_DATABASE)")
    assert f"allowed: {DATABASE_ACCEPTED}" in message and "\n" not in message


def test_a_database_url_in_the_settings_file_is_refused_too(tmp_path: Path) -> None:
    user = tmp_path / "settings.toml"
    user.write_text('[database]\npath = "mysql://db.internal/news"\n')
    with pytest.raises(ConfigError, match=r"^setting database\.path is 'mysql://"):
        load_settings(user, {})


def test_a_refused_database_url_does_not_show_its_password() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"NEWS_NOTIFIER_DATABASE": "mysql://bot:s3cret@db/news"})
    assert "s3cret" not in str(error.value) and "mysql://bot:***@db/news" in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot@db.internal/news",
        "postgres://bot:s3cret@db.internal:5433/news",
        "postgresql://bot@db.internal/news?sslmode=require",
        "postgresql:///news?host=/var/run/postgresql",
    ],
)
def test_a_postgresql_url_is_a_database(url: str) -> None:
    assert load_settings(None, {"NEWS_NOTIFIER_DATABASE": url}).database.path == url


@pytest.mark.parametrize(
    "path",
    [
        "data/news-notifier.sqlite3",
        "/data/news-notifier.sqlite3",
        "C:\\bot\\news.sqlite3",
        "C:/bot/news.sqlite3",
        "backups/2025-03-01T08:00:00.sqlite3",
        "file:news.sqlite3",
        ":memory:",
    ],
)
def test_paths_with_colons_are_still_paths(path: str) -> None:
    assert load_settings(None, {"NEWS_NOTIFIER_DATABASE": path}).database.path == path

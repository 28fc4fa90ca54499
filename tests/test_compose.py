"""The compose files, read without a Docker engine: compose.postgres.yaml (the bot on
PostgreSQL) holds what an operator relies on, and says the same as compose.yaml about
the bot itself."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.config import load_settings
from tests.paths import REPO

# Compose interpolates ${NAME:?message} from .env: the password is never written here.
PASSWORD = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}"
# What may differ between the two files' bot services: where the database is.
DATABASE_KEYS = {"environment", "depends_on", "volumes"}


def compose(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / name).read_text())


def test_postgres_service_is_postgresql_15_with_a_healthcheck_a_volume_and_a_secret() -> None:
    document = compose("compose.postgres.yaml")
    postgres = document["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    environment = postgres["environment"]
    assert environment["POSTGRES_PASSWORD"] == PASSWORD
    test = postgres["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and test[1].startswith("pg_isready ")
    assert f"-U {environment['POSTGRES_USER']}" in test[1]
    assert f"-d {environment['POSTGRES_DB']}" in test[1]
    [mount] = postgres["volumes"]
    volume, folder = mount.split(":")
    assert folder == "/var/lib/postgresql/data"
    assert volume in document["volumes"]  # named, so it outlives the container


def test_the_bot_waits_for_a_healthy_postgres_and_its_database_setting_is_taken() -> None:
    services = compose("compose.postgres.yaml")["services"]
    bot, postgres = services["news-notifier"], services["postgres"]
    assert bot["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    environment = bot["environment"]
    url = urlsplit(environment["NEWS_NOTIFIER_DATABASE"])
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.path == "/" + postgres["environment"]["POSTGRES_DB"]
    assert url.password is None and environment["PGPASSWORD"] == PASSWORD
    settings = load_settings(None, {"NEWS_NOTIFIER_DATABASE": url.geturl()})
    assert settings.database.path == url.geturl()


def test_the_bot_service_is_the_same_in_both_files_but_for_its_database() -> None:
    plain = compose("compose.yaml")["services"]["news-notifier"]
    variant = compose("compose.postgres.yaml")["services"]["news-notifier"]
    assert {k: v for k, v in variant.items() if k not in DATABASE_KEYS} == {
        k: v for k, v in plain.items() if k not in DATABASE_KEYS
    }
    # The SQLite volume stays mounted in the variant, where migrate-db reads it.
    assert set(plain["volumes"]) <= set(variant["volumes"])

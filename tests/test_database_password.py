"""Where a PostgreSQL password may come from (README, NEWS_NOTIFIER_DATABASE): the URL,
PGPASSWORD, or a password file (~/.pgpass, or the one PGPASSFILE names).

The test server trusts everybody, so it cannot show which password a client sent: a
small stand-in server on loopback asks for the password in clear text, keeps what the bot
sent, and refuses it. The bot opens its store on it as it opens any database.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Store

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
USER, DATABASE = "bot", "news"


class PasswordCatcher:
    """Speaks PostgreSQL's start-up protocol up to the password, then refuses it."""

    def __init__(self) -> None:
        self.passwords: list[str] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # SSL and GSS encryption requests first: declined, one byte each
                [length, code] = struct.unpack("!ii", await reader.readexactly(8))
                await reader.readexactly(length - 8)
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    break
                writer.write(b"N")
            writer.write(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            kind, length = struct.unpack("!ci", await reader.readexactly(5))
            assert kind == b"p"
            self.passwords.append((await reader.readexactly(length - 4)).rstrip(b"\0").decode())
            fields = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
            writer.write(b"E" + struct.pack("!i", len(fields) + 4) + fields)
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def catcher(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[PasswordCatcher]:
    for name in ("PGPASSWORD", "PGPASSFILE", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.pgpass of the machine's
    caught = PasswordCatcher()
    server = await asyncio.start_server(caught.serve, "127.0.0.1", 0)
    caught.port = server.sockets[0].getsockname()[1]
    async with server:
        yield caught


def password_file(path: Path, port: int, password: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"127.0.0.1:{port}:{DATABASE}:{USER}:{password}\n")
    path.chmod(0o600)  # a password file others can read is ignored
    return path


async def sent_password(catcher: PasswordCatcher, url: str) -> str:
    with pytest.raises(Exception, match="password authentication failed"):
        await Store.open(url)
    [password] = catcher.passwords
    return password


async def test_the_password_in_the_url(catcher: PasswordCatcher) -> None:
    url = f"postgresql://{USER}:from-url@127.0.0.1:{catcher.port}/{DATABASE}"
    assert await sent_password(catcher, url) == "from-url"


async def test_the_password_in_pgpassword(
    catcher: PasswordCatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-environment")
    url = f"postgresql://{USER}@127.0.0.1:{catcher.port}/{DATABASE}"
    assert await sent_password(catcher, url) == "from-environment"


async def test_the_password_in_pgpass_in_the_home_folder(
    catcher: PasswordCatcher, tmp_path: Path
) -> None:
    password_file(tmp_path / "home" / ".pgpass", catcher.port, "from-home-pgpass")
    url = f"postgresql://{USER}@127.0.0.1:{catcher.port}/{DATABASE}"
    assert await sent_password(catcher, url) == "from-home-pgpass"


async def test_the_password_in_the_file_pgpassfile_names(
    catcher: PasswordCatcher, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    named = password_file(tmp_path / "secrets" / "pgpass", catcher.port, "from-pgpassfile")
    monkeypatch.setenv("PGPASSFILE", str(named))
    url = f"postgresql://{USER}@127.0.0.1:{catcher.port}/{DATABASE}"
    assert await sent_password(catcher, url) == "from-pgpassfile"

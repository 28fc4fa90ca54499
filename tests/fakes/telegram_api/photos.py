"""Photos sent by URL, as Telegram fetches and checks them: only loopback hosts are fetched
(tests serve pictures from their feed server); any other host is unreachable from a test,
so it is answered as a URL Telegram could not fetch. Refusals use Telegram's texts:
"failed to get HTTP URL content" (no answer, not 200, over 5 MB), "wrong type of the web
page content" (not JPEG, PNG or GIF), "IMAGE_PROCESS_FAILED" (bytes that are no such image),
"PHOTO_INVALID_DIMENSIONS" (width plus height over 10000, or one side over 20 times the
other).
"""

from __future__ import annotations

import struct
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from tests.fakes.telegram_api.errors import bad_request

PHOTO_URL_LIMIT: Final = 5 * 1024 * 1024  # a photo sent by URL (sendPhoto docs)
PHOTO_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif"})


async def fetch_photo(url: str) -> bytes:
    """The picture at `url`, fetched as Telegram fetches a photo sent by URL (see the module
    docstring for what is refused and how)."""
    unreachable = bad_request("failed to get HTTP URL content")
    host = (urlsplit(url).hostname or "").lower()
    if host != "localhost" and not host.startswith("127.") and host != "::1":
        raise unreachable  # a test cannot reach the internet; Telegram could not either
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(url) as response,
        ):
            if response.status != 200:
                raise unreachable
            data = bytearray()
            async for chunk in response.content.iter_chunked(65_536):
                data += chunk
                if len(data) > PHOTO_URL_LIMIT:
                    raise unreachable
            kind = response.content_type
    except (aiohttp.ClientError, TimeoutError):
        raise unreachable from None
    if kind not in PHOTO_TYPES:
        raise bad_request("wrong type of the web page content")
    return bytes(data)


def photo_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) read from a JPEG, PNG or GIF header, checked as Telegram checks a
    photo's: width + height at most 10000, neither side over 20 times the other."""
    size = _image_size(data)
    if size is None or min(size) < 1:
        raise bad_request("IMAGE_PROCESS_FAILED")
    width, height = size
    if width + height > 10_000 or max(width, height) > 20 * min(width, height):
        raise bad_request("PHOTO_INVALID_DIMENSIONS")
    return size


def _image_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The size in a JPEG's start-of-frame segment (SOF0-SOF15 but DHT, JPG and DAC)."""
    i = 2
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None

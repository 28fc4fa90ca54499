"""Pictures for tests that send photos: a real PNG of any size, and the head of a JPEG
(what the fake Bot API reads of one: its size), served by the feed server."""

from __future__ import annotations

import struct
import zlib


def png(width: int, height: int) -> bytes:
    """A valid, all-black RGB PNG of `width` × `height` pixels."""
    row = b"\x00" + b"\x00\x00\x00" * width  # filter byte, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(row * height))
        + _chunk(b"IEND", b"")
    )


def jpeg_head(width: int, height: int) -> bytes:
    """The start of a baseline JPEG up to its frame header, then its end: a JPEG's size as
    a reader finds it (it decodes to no picture, which the fake does not try)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + b"\xff\xc0" + frame + b"\xff\xd9"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

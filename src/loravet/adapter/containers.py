"""Compressed wrappers a loader opens transparently (gzip, bz2, xz/lzma, zlib as joblib writes it),
decompressed with a cap on the output: never read-then-truncate, never unbounded."""

from __future__ import annotations

import io
import zlib
from typing import Protocol

__all__ = [
    "ContainerError",
    "ContainerLimit",
    "ContainerUnsupported",
    "compression_of",
    "decompress_bounded",
    "read_upto",
]


class ContainerError(ValueError):
    """A compressed stream that cannot be decompressed."""


class ContainerLimit(ContainerError):
    """Decompressing would exceed the cap: the rest was not read."""


class ContainerUnsupported(ContainerError):
    """A compression loravet has no decoder for (lz4, as joblib can write): not read."""


def compression_of(head: bytes) -> str | None:
    """gzip | bz2 | xz | lzma | zlib, by magic bytes; None when the data is not compressed."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00") and len(head) >= 13:
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and head[1] in (0x01, 0x5E, 0x9C, 0xDA):
        return "zlib"
    return None


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def read_upto(fh: _Readable, n: int) -> bytes:
    """At most `n` bytes of `fh`, read a MiB at a time. (`fh.read(n)` reserves all `n` bytes first: under the
    per-adapter memory budget, a 100-byte .pkl.gz read with a 2 GiB cap was "over the memory budget".)"""
    chunks: list[bytes] = []
    left = n
    while left > 0 and (chunk := fh.read(min(left, 1 << 20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_stream(kind: str, src: io.BytesIO, n: int) -> bytes:
    if kind == "gzip":
        import gzip  # only for a gzip stream: a cold `loravet check` of plain adapters never needs it

        with gzip.GzipFile(fileobj=src) as gz:
            return read_upto(gz, n)
    if kind == "bz2":
        import bz2  # as gzip: only for such a stream

        with bz2.BZ2File(src) as bz:
            return read_upto(bz, n)
    import lzma  # as gzip: only for such a stream

    with lzma.LZMAFile(src, format=lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE) as xz:
        return read_upto(xz, n)


def decompress_bounded(data: bytes, max_out: int) -> bytes:
    """The data decompressed (one layer) when it is compressed, else unchanged. Raises ContainerLimit
    beyond `max_out` bytes, ContainerError when the stream is corrupt."""
    kind = compression_of(data[:16])
    if kind is None:
        return data
    if kind == "lz4":
        raise ContainerUnsupported("lz4 stream: no decoder, not read")
    import lzma  # for its error class; loaded only once a compressed stream is there

    try:
        if kind == "zlib":
            d = zlib.decompressobj()
            out = d.decompress(data, max_out + 1)
        else:
            out = _read_stream(kind, io.BytesIO(data), max_out + 1)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise ContainerError(f"corrupt {kind} stream ({str(exc)[:80]})") from None
    if len(out) > max_out:
        raise ContainerLimit(f"{kind} stream decompresses to over {max_out:,} bytes: not read")
    return out

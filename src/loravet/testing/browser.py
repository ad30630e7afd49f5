"""Headless Chromium for report tests and the docs scripts: DOM text and a screenshot that must not be blank."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _no_address_space_cap() -> None:
    """In the browser's process only: lift an address-space cap it would inherit from the test process (the
    per-adapter memory budget is an RLIMIT_AS; Chromium reserves far more address space than it uses and
    renders nothing under such a cap: seen in CI as empty output on every try)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def run_chromium(
    args: list[str], done: Callable[[subprocess.CompletedProcess[str]], bool] = lambda p: True
) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run, tried up to five times with a growing pause: on a machine under heavy load a
    start can die before it renders (empty output, no file), which says nothing about the page. Seen in CI
    with three quick tries: all three died while two other test runs shared the two cores."""
    exe = chromium()
    assert exe is not None
    proc: subprocess.CompletedProcess[str] | None = None
    for attempt in range(5):
        if attempt:
            time.sleep(2.0 * attempt)
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.run(
                [exe, *FLAGS, f"--user-data-dir={profile}", *args],
                capture_output=True,
                text=True,
                timeout=120,
                preexec_fn=_no_address_space_cap,
            )
        if proc.returncode == 0 and done(proc):
            return proc
    assert proc is not None
    # the last try's own words, for whoever reads the failing test
    proc.stderr = f"chromium failed 5 times (exit {proc.returncode}): " + proc.stderr[-2000:]
    assert proc is not None
    return proc


def dump_dom(html: Path) -> str:
    return run_chromium(["--dump-dom", html.resolve().as_uri()], lambda p: bool(p.stdout.strip())).stdout


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 1600) -> Path:
    run_chromium(
        [f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()],
        lambda p: png.exists() and png.stat().st_size > 0,
    )
    return png


def png_distinct_bytes(png: Path) -> int:
    """Distinct byte values in the decompressed image data: a blank page has two or three."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))

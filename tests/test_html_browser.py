"""The HTML report rendered by a real browser: key text in the DOM, and a screenshot that is not blank."""

from __future__ import annotations

from pathlib import Path

import pytest

from loravet.testing.browser import chromium, dump_dom, png_distinct_bytes, screenshot
from loravet.testing.cli import run_cli

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed")


def test_demo_report_renders_in_chromium(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert run_cli("demo", "--static", str(out)).returncode == 0
    dom = dump_dom(out / "report.html")
    for text in ("Depend on:", "jigsaw-smollm-fold0", "reddit-360m-think", "architecture-mismatch",
                 "unsafe-pickle", "HuggingFaceTB/SmolLM2-360M-Instruct", "trainable parameters"):
        assert text in dom, text
    assert "<svg" in dom  # the plots are inline SVG
    png = screenshot(out / "report.html", tmp_path / "shot.png")
    assert png.stat().st_size > 10_000
    assert png_distinct_bytes(png) > 20


def test_blank_page_is_detected_as_blank(tmp_path: Path) -> None:
    """The non-blank check itself can fail."""
    page = tmp_path / "blank.html"
    page.write_text("<html><body style='background:#fff'></body></html>")
    png = screenshot(page, tmp_path / "blank.png", 400, 300)
    assert png_distinct_bytes(png) <= 8

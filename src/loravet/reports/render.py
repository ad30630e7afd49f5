"""One entry point for every output format."""

from __future__ import annotations

from loravet.reports.html import render_html
from loravet.reports.sarif import render_sarif
from loravet.reports.text import render_json, render_markdown, render_table
from loravet.results import Report

__all__ = ["render"]


def render(report: Report, fmt: str, color: bool = False, width: int | None = None) -> str:
    """`width` only shapes the table (default 120 columns); the other formats have no width."""
    if fmt == "json":
        return render_json(report)
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    if fmt == "sarif":
        return render_sarif(report)
    return render_table(report, width=width, color=color)

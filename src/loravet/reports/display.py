"""How a Report shows itself in a notebook: print(report) and display(report). Registered into
loravet.results.VIEWS on import (the package imports this module), so that the results model does not import
its renderers."""

from __future__ import annotations

from loravet.reports.evaluation_text import short_repr
from loravet.reports.html import render_html
from loravet.results import VIEWS, Report

__all__ = ["html_fragment"]


def html_fragment(report: Report) -> str:
    return render_html(report, fragment=True)


VIEWS["repr"] = short_repr
VIEWS["html"] = html_fragment

"""Make adapter-controlled text safe to show: on a terminal, in Markdown, in a spreadsheet.

Every string an adapter controls (folder and zip names, config values and key names, model-card text,
tensor and artifact names, and the finding messages and evidence that quote them) passes through here
before a reporter prints it. Nothing is removed silently: a control character is shown as its escape
(``\\x1b``), so a reader sees that the adapter tried something.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

from loravet.results import AdapterReport, Report

__all__ = ["csv_cell", "markdown_text", "terminal_report", "terminal_text", "visible"]

# C0 controls, DEL, C1 controls (0x80-0x9f: 8-bit CSI/OSC/DCS for terminals that honour them), line and
# paragraph separators, bidirectional overrides and isolates (they reorder what the reader sees), BOM.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u061c\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
# a backslash right before "[" would escape the escaping of rich markup ("\\[red]" -> "\" + tag)
_BACKSLASH_BRACKET = re.compile(r"\\(?=\[)")


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """Every control, escape and reordering character shown as a visible escape (``\\x1b``, ``\\u202e``)."""
    return _UNSAFE.sub(_escape_char, text)


def terminal_text(text: str) -> str:
    """Safe to print on a terminal, and to give rich as markup after rich's usual escaping of "[":
    controls shown visibly, and a backslash before "[" shown as ``\\x5c`` so it cannot cancel that escape."""
    return _BACKSLASH_BRACKET.sub(r"\\x5c", visible(text))


def _clean(value: Any, depth: int = 0) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a Comparison, its rows, a hint
        return dataclasses.replace(
            value, **{f.name: _clean(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value) if f.init}
        )
    if isinstance(value, str):
        return terminal_text(value)
    if depth > 100:  # configs are capped at 64 levels; deeper data is not shown
        return "..."
    if isinstance(value, dict):
        return {terminal_text(str(k)) if isinstance(k, str) else k: _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value]
    return value


def terminal_report(report: Report) -> Report:
    """A copy of a Report whose every string is :func:`terminal_text` (the terminal reporters print it)."""
    adapters: list[AdapterReport] = []
    for a in report.adapters:
        fields = {f.name: _clean(getattr(a, f.name)) for f in dataclasses.fields(a) if f.name != "findings"}
        clean = AdapterReport(**fields)
        for f in a.findings:
            g = copy.copy(f)
            g.message = terminal_text(f.message)
            g.evidence = _clean(f.evidence)
            clean.findings.append(g)
        adapters.append(clean)
    return Report(terminal_text(report.command), adapters, _clean(report.comparison), _clean(report.evaluation))


# Markdown: every ASCII punctuation character that can start markup (CommonMark lets any be backslash-escaped).
_MD_META = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&:=\"'$^])")


def markdown_text(text: str) -> str:
    """Adapter text as inert Markdown: no HTML, no links or images, no emphasis, one table cell's worth.

    Controls are shown visibly, every Markdown/HTML metacharacter is backslash-escaped, and URLs are
    defanged (``https[:]//``, ``www[.]``) so that renderers that autolink bare URLs do not either."""
    out = _MD_META.sub(r"\\\1", visible(text))
    out = re.sub(r"(?i)([a-z][a-z0-9+\\.\-]*)\\:(?=/|\\/)", r"\1\\[\\:\\]", out)
    return re.sub(r"(?i)\bwww\\\.", r"www\\[\\.\\]", out)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: Any) -> Any:
    """A cell spreadsheet programs will not run as a formula: text starting with = + - @ tab CR or LF gets a
    leading apostrophe (OWASP's advice), except a plain number such as "-3". Numbers and other non-text values
    are returned unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value

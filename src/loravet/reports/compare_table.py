"""The comparison as a rich table on the terminal.

Folds of one k-fold set share one column (``stem-fold0-4``) that shows a value once when the folds agree
and, where they differ, each distinct value with the folds that have it; so six or more adapters stay
readable at 100 columns. The JSON, Markdown and HTML reports keep one column per adapter."""

from __future__ import annotations

import re
from typing import Any

from loravet.reports.format import fmt
from loravet.results import AdapterReport, Cell, Report

__all__ = ["fold_groups", "render_comparison_table"]

_FOLD = re.compile(r"^(?P<stem>.*?)(?P<n>\d+)$")


def fold_groups(adapters: list[AdapterReport]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Columns in argument order: (label, [(adapter name, short name)]). Adapters in a k-fold set whose names
    differ only by the trailing fold number share one column; any other adapter has a column of its own."""
    stems: dict[str, list[tuple[str, str]]] = {}
    order: list[str] = []
    for a in adapters:
        m = _FOLD.match(a.name) if a.kfold is not None else None
        key = f"set:{m.group('stem')}" if m else f"one:{a.name}"
        if key not in stems:
            stems[key] = []
            order.append(key)
        stems[key].append(
            (
                a.name,
                f"fold{m.group('n')}"
                if m and "fold" in m.group("stem").lower()[-4:]
                else (m.group("n") if m else a.name),
            )
        )
    columns: list[tuple[str, list[tuple[str, str]]]] = []
    for key in order:
        members = stems[key]
        if key.startswith("set:") and len(members) > 1:
            stem = key[4:]
            nums = [int(_FOLD.match(n).group("n")) for n, _ in members]  # type: ignore[union-attr]
            contiguous = nums == list(range(nums[0], nums[0] + len(nums)))
            numbers = f"{nums[0]}-{nums[-1]}" if contiguous else "{" + ",".join(map(str, nums)) + "}"
            columns.append((f"{stem}{numbers}", members))
        else:
            columns.extend((name, [(name, name)]) for name, _ in members)
    return columns


def _cell(values: dict[str, Cell], members: list[tuple[str, str]], winner: str | None) -> str:
    texts = [(short, fmt(values.get(name)), name == winner) for name, short in members]
    if len(members) == 1:
        _, text, won = texts[0]
        return f"[green]{_esc(text)}[/]" if won else _esc(text)
    distinct: dict[str, list[str]] = {}
    for short, text, _ in texts:
        distinct.setdefault(text, []).append(short)
    if len(distinct) == 1:
        return _esc(texts[0][1])
    return "\n".join(f"{', '.join(shorts)}: {_esc(text)}" for text, shorts in distinct.items())


def _esc(text: str) -> str:
    return text.replace("[", "\\[")


def render_comparison_table(report: Report, console: Any) -> None:
    from rich.table import Table

    comp = report.comparison
    if not comp:
        return
    columns = fold_groups(report.adapters)
    t = Table(
        title="Comparison",
        title_justify="left",
        show_lines=len(columns) < len(report.adapters),
        expand=len(columns) > 3,
    )
    t.add_column("aspect", style="bold", overflow="fold", ratio=2)
    for label, _ in columns:
        t.add_column(_esc(label), overflow="fold", ratio=2)
    t.add_column("winner: reason", overflow="fold", ratio=3)
    for row in comp.rows:
        cells = [_cell(row.values, members, row.winner) for _, members in columns]
        verdict = f"[green]{_esc(row.winner)}[/]\n" if row.winner else ""
        t.add_row(row.aspect, *cells, verdict + _esc(row.reason))
    console.print(t)
    pref = comp.preferred
    console.print(f"[bold]Depend on: {_esc(pref or 'none')}[/] — " + _esc(comp.reason))

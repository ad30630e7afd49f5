"""The comparison as a rich table on the terminal."""

from __future__ import annotations

from typing import Any

from loravet.report import Report
from loravet.reports.text import _fmt

__all__ = ["render_comparison_table"]


def render_comparison_table(report: Report, console: Any) -> None:
    from rich.table import Table

    comp = report.comparison
    if not comp:
        return
    names = [a.name for a in report.adapters]
    t = Table(title="Comparison", title_justify="left", show_lines=False)
    t.add_column("aspect", style="bold", overflow="fold")
    for n in names:
        t.add_column(n, overflow="fold")
    t.add_column("winner", style="green", overflow="fold")
    t.add_column("reason", overflow="fold")
    for row in comp["rows"]:
        cells = []
        for n in names:
            text = _fmt(row["values"].get(n)).replace("[", "\\[")
            cells.append(f"[green]{text}[/]" if row["winner"] == n else text)
        t.add_row(row["aspect"], *cells, row["winner"] or "-", row["reason"].replace("[", "\\["))
    console.print(t)
    pref = comp.get("preferred")
    console.print(f"[bold]Depend on: {pref or 'none'}[/] — " + comp.get("reason", "").replace("[", "\\["))

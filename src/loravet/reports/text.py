"""Terminal and Markdown reporters: they read a Report and know nothing about checks."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from loravet.findings import FINDING_RULES
from loravet.reports.compare_table import render_comparison_table
from loravet.reports.evaluation_text import markdown_evaluation_extra, render_evaluation
from loravet.reports.format import adapter_rows, fmt
from loravet.reports.sanitize import markdown_text, terminal_report
from loravet.results import Report

__all__ = ["render_json", "render_markdown", "render_summary_table", "render_table"]

_OUTCOME_STYLE = {"loads": "green", "partial": "yellow", "inert": "red", "fails": "bold red", "unknown": "dim"}
_SEV_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _finite(value: Any, depth: int = 0) -> Any:
    """NaN and infinities become null (strict JSON has neither; the checks report them as findings)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if depth > 200:
        return value
    if isinstance(value, dict):
        return {k: _finite(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, depth + 1) for v in value]
    return value


# json.dumps escapes C0 controls; these it leaves raw (ensure_ascii=False): DEL, C1 (8-bit CSI/OSC for a terminal
# the JSON is printed on), line/paragraph separators, bidi overrides. \uXXXX is the same JSON string.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200e\u200f\u061c\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def render_json(report: Report) -> str:
    text = json.dumps(_finite(report.to_json()), indent=2, default=str, allow_nan=False, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text) + "\n"


def render_table(report: Report, width: int | None = None, color: bool = False) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    report = terminal_report(report)  # every adapter-controlled string with its controls shown visibly
    buf = io.StringIO()
    console = Console(
        file=buf, width=width or 120, force_terminal=color, color_system="auto" if color else None, no_color=not color
    )
    for a in report.adapters:
        t = Table(title=Text(f"{a.name}  ({a.source})"), show_header=False, title_justify="left", expand=False)
        t.add_column("aspect", style="bold")
        t.add_column("value", overflow="fold")
        for k, v in adapter_rows(a):
            style = _OUTCOME_STYLE.get(v) if k == "load outcome" else None
            t.add_row(k, Text(v, style=style or ""))
        console.print(t)
        if a.findings:
            ft = Table(show_header=True, header_style="bold", expand=False)
            ft.add_column("severity")
            ft.add_column("code")
            ft.add_column("message", overflow="fold")
            for f in sorted(a.findings, key=lambda f: -f.severity):
                st = _SEV_STYLE[f.severity.label]
                ft.add_row(Text(f.severity.label, style=st), Text(f.code), Text(f.message))
            console.print(ft)
        else:
            console.print("no findings")
        console.print()
    if report.comparison:
        render_comparison_table(report, console)
    if report.evaluation is not None:  # the evaluation last: the bottom of the terminal is where people look
        render_evaluation(report, console)
    return buf.getvalue()


def _md_escape(text: str) -> str:
    return markdown_text(str(text))


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in `text`, so the text cannot close it."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)


def render_markdown(report: Report) -> str:
    lines = [f"# loravet {report.command} report", ""]
    if report.comparison:
        comp = report.comparison
        names = [a.name for a in report.adapters]
        lines += [
            "## Comparison",
            "",
            "| aspect | " + " | ".join(map(_md_escape, names)) + " | winner | reason |",
            "|---|" + "---|" * len(names) + "---|---|",
        ]
        for row in comp.rows:
            vals = [_md_escape(fmt(row.values.get(n))) for n in names]
            lines.append(
                f"| {_md_escape(row.aspect)} | "
                + " | ".join(vals)
                + f" | {_md_escape(row.winner or '-')} | {_md_escape(row.reason)} |"
            )
        lines += ["", f"**Preferred: {_md_escape(comp.preferred or 'none')}** — {_md_escape(comp.reason)}", ""]
    for a in report.adapters:
        lines += [
            f"## {_md_escape(a.name)}",
            "",
            f"Source: {_md_escape(a.source)}",
            "",
            "| aspect | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {_md_escape(v)} |" for k, v in adapter_rows(a)]
        lines += ["", "### Findings", ""]
        if not a.findings:
            lines.append("No findings.")
        for f in sorted(a.findings, key=lambda f: -f.severity):
            rule = FINDING_RULES.get(f.code)
            fix = f" Fix: {rule.fix}" if rule else ""
            lines.append(f"- **{f.severity.label}** `{f.code}`: {_md_escape(f.message)}.{fix}")
        lines.append("")
    ev = report.evaluation
    if ev is not None:
        lines += [
            "## Evaluation",
            "",
            f"metric: {ev.metric}, rows: {ev.rows}, prompt {ev.prompt_version}",
            "",
            "| model | rule_mean_auc | 95% CI | auc |",
            "|---|---|---|---|",
        ]
        for name, s in ev.scores.items():
            ci = s.ci95
            ci_text = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-"
            lines.append(f"| {_md_escape(name)} | {fmt(s.rule_mean_auc)} | {ci_text} | {fmt(s.auc)} |")
        prompt = ev.prompt
        lines += ["", "Prompt:", "", _fence(prompt), prompt, _fence(prompt), ""]
        if ev.skipped:
            lines += [
                "Not loaded: " + "; ".join(f"{_md_escape(k)}: {_md_escape(v)}" for k, v in ev.skipped.items()),
                "",
            ]
        lines += markdown_evaluation_extra(report)
    return "\n".join(lines)


def render_summary_table(report: Report, color: bool = False, width: int | None = None) -> str:
    """One line per adapter: the verdict at a glance (the demo prints this)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    report = terminal_report(report)
    buf = io.StringIO()
    console = Console(
        file=buf, width=width or 120, force_terminal=color, color_system="auto" if color else None, no_color=not color
    )
    t = Table(show_header=True, header_style="bold")
    for col in ("adapter", "load outcome", "traced from tensors", "trainable params", "worst finding"):
        t.add_column(col, overflow="fold")
    for a in report.adapters:
        worst = sorted(a.findings, key=lambda f: -f.severity)
        style = _OUTCOME_STYLE.get(a.load_outcome, "")
        t.add_row(
            Text(a.name),
            Text(a.load_outcome, style=style),
            Text(fmt((a.architecture or {}).get("best_match"))),
            f"{a.trainable_params:,}" if a.trainable_params is not None else "-",
            f"{worst[0].severity.label} {worst[0].code}" if worst else "none",
        )
    console.print(t)
    return buf.getvalue()

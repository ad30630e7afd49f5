"""The evaluation where people look: the terminal table (called from reports/text.py), the Markdown
additions, and the short text repr of a Report (a notebook's `print(report)`)."""

from __future__ import annotations

import unicodedata
from typing import Any

from loravet.results import Evaluation, Report, ScoreBlock

__all__ = ["markdown_evaluation_extra", "render_evaluation", "short_repr"]


def _plain(text: Any, limit: int = 400) -> str:
    """One line of text from untrusted data: control characters dropped, newlines as spaces."""
    s = str(text).replace("\r\n", " ").replace("\n", " ").replace("\t", " ")
    s = "".join(ch for ch in s if unicodedata.category(ch) not in ("Cc", "Cf") or ch == " ")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _markup(text: Any, limit: int = 400) -> str:
    from rich.markup import escape

    return escape(_plain(text, limit))


def _num(v: Any, digits: int = 4) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def _ci(block: ScoreBlock) -> str:
    ci = block.ci95
    return f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-"


def _headline(ev: Evaluation) -> str:
    timing = ev.timing
    parts = [f"{ev.rows} rows", f"metric {ev.metric}", f"prompt {ev.prompt_version}"]
    if ev.device:
        parts.append(f"{ev.device} {ev.dtype}")
    parts.append(f"load {timing.load_s} s, scoring {timing.score_s} s ({timing.rows_per_s} model-rows/s)")
    return ", ".join(parts)


def _model_rows(ev: Evaluation) -> list[tuple[str, str, str, str, str, str]]:
    """(model, rule-mean AUC, CI, AUC, agreement with the base, degenerate) per scored model."""
    agreement = ev.agreement.get("base") or {}
    degenerate = ev.degenerate or {}
    rows = []
    for name, block in ev.scores.items():
        if name in ("ensemble", "ensemble_rank"):
            continue
        agree = "(control)" if name == "base" else _num(agreement.get(name), 3)
        degen = "-" if name == "base" else (f"yes: {degenerate[name]}" if name in degenerate else "no")
        rows.append((name, _num(block.rule_mean_auc), _ci(block), _num(block.auc), agree, degen))
    return rows


def _ensemble_lines(ev: Evaluation) -> list[str]:
    out = []
    for name, how in (("ensemble", "mean probability"), ("ensemble_rank", "per-rule rank average")):
        block = ev.scores.get(name)
        if block is not None:
            out.append(
                f"{name} ({how} of {', '.join(block.members or [])}): rule-mean AUC "
                f"{_num(block.rule_mean_auc)} (95% CI {_ci(block)}), AUC {_num(block.auc)}"
            )
    return out


def _answer_line(ev: Evaluation) -> str | None:
    tokens = ev.answer_tokens
    if not tokens:
        return None

    def side(ids: list[int], texts: list[str]) -> str:
        return ", ".join(f"{t!r} ({i})" for i, t in zip(ids, texts, strict=False))

    return (
        f"answer tokens: yes {side(tokens.get('yes', []), tokens.get('yes_strings', []))}; "
        f"no {side(tokens.get('no', []), tokens.get('no_strings', []))}"
    )


def _files_line(ev: Evaluation) -> str | None:
    parts = []
    if ev.predictions_file:
        parts.append(f"predictions {ev.predictions_file}")
    sub = ev.submission
    if sub is not None:
        parts.append(f"submission {sub.file} (from {sub.source})")
    return "written: " + "; ".join(parts) if parts else None


def render_evaluation(report: Report, console: Any) -> None:
    """The evaluation block of the terminal table format."""
    ev = report.evaluation
    if ev is None:
        return
    from rich.table import Table

    t = Table(title=f"Evaluation: {_markup(_headline(ev))}", title_justify="left", header_style="bold", expand=False)
    t.add_column("model", overflow="fold")
    t.add_column("rule-mean AUC", justify="right")
    t.add_column("95% CI")
    t.add_column("AUC", justify="right")
    t.add_column("agreement with base", justify="right")
    t.add_column("degenerate", overflow="fold")
    for name, rule_mean, ci, auc, agree, degen in _model_rows(ev):
        style = "red" if degen.startswith("yes") else None
        t.add_row(
            _markup(name, 60), rule_mean, ci, auc, agree, f"[{style}]{_markup(degen)}[/]" if style else _markup(degen)
        )
    console.print(t)
    for line in _ensemble_lines(ev):
        console.print(_markup(line))
    for name, why in (ev.skipped or {}).items():
        console.print(f"[bold red]not loaded[/] {_markup(name, 60)}: {_markup(why)}")
    for extra in (_answer_line(ev), _files_line(ev)):
        if extra:
            console.print(_markup(extra))
    notes = ev.notes or []
    if notes:
        console.print("[bold]notes[/]")
        for n in notes:
            console.print(f"  - {_markup(n, 1000)}")
    console.print()


def markdown_evaluation_extra(report: Report) -> list[str]:
    """What the Markdown report adds under its evaluation table: agreement, degeneracy, ensembles, answer
    tokens, files and every note."""
    ev = report.evaluation
    if ev is None:
        return []

    def cell(text: str) -> str:
        return _plain(text).replace("|", "\\|")

    lines = ["| model | agreement with base | degenerate |", "|---|---|---|"]
    lines += [f"| {cell(r[0])} | {r[4]} | {cell(r[5])} |" for r in _model_rows(ev)]
    lines.append("")
    for extra in (*_ensemble_lines(ev), _answer_line(ev), _files_line(ev)):
        if extra:
            lines += [cell(extra), ""]
    notes = ev.notes or []
    if notes:
        lines += ["Notes:", ""] + [f"- {cell(n)}" for n in notes] + [""]
    return lines


def short_repr(report: Report) -> str:
    """A few lines: each adapter's load outcome and worst finding, the evaluation's headline numbers, the
    comparison's choice, and where the rest is."""
    lines = [f"<loravet Report: {report.command}, {len(report.adapters)} adapter(s)>"]
    width = max((len(_plain(a.name, 40)) for a in report.adapters), default=0)
    for a in report.adapters:
        worst = sorted(a.findings, key=lambda f: -f.severity)
        top = f"{worst[0].severity.label} {worst[0].code}" if worst else "no findings"
        more = f" (+{len(worst) - 1} more)" if len(worst) > 1 else ""
        lines.append(f"  {_plain(a.name, 40):{width}}  {a.load_outcome:8} {top}{more}")
    ev = report.evaluation
    if ev is not None:
        metric = ev.metric
        scores = ", ".join(f"{_plain(n, 40)} {_num(getattr(b, metric, None), 3)}" for n, b in ev.scores.items())
        lines.append(f"  evaluation: {ev.rows} rows, {metric}: {scores}")
        if ev.skipped:
            lines.append(f"  not loaded: {', '.join(_plain(k, 40) for k in ev.skipped)}")
        if ev.notes:
            lines.append(f"  {len(ev.notes)} note(s) in report.evaluation['notes']")
    if report.predictions is not None:
        shape = getattr(report.predictions, "shape", None)
        size = f"{shape[0]} x {shape[1]}" if shape else f"{len(report.predictions)} columns"
        lines.append(f"  report.predictions: per-row scores ({size})")
    comp = report.comparison
    if comp:
        lines.append(f"  preferred: {_plain(comp.preferred or 'none', 60)} - {_plain(comp.reason, 600)}")
    lines.append("  report.to_json() has everything; display(report) shows the HTML report")
    return "\n".join(lines)

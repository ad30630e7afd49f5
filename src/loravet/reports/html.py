"""A self-contained HTML report: no CDN, no script, inline CSS and SVG plots; works offline."""

from __future__ import annotations

import json
import re

from loravet.findings import FINDING_RULES, Severity
from loravet.reports.format import adapter_rows, fmt
from loravet.reports.notebook import scope_css
from loravet.reports.sanitize import visible
from loravet.results import AdapterReport, Evaluation, Report, ScoreBlock

__all__ = ["render_html"]


def escape(text: str) -> str:
    """HTML-escaped, and every control, escape and reordering character shown visibly (``\\x1b``): the report
    is often printed to a terminal (``--format html`` without ``-o``), where a raw OSC 8 link or a bidi
    override from an adapter's strings would act. Newlines stay (evidence and prompts are multi-line)."""
    # lazy: the html package loads html.entities (~5 ms of every cold `loravet check`, which writes no HTML)
    from html import escape as html_escape

    return html_escape("\n".join(visible(line) for line in text.split("\n")))


# every rule is scoped under the root class, so the report can sit inside a notebook page without restyling it;
# cells repeat the class to outweigh JupyterLab's `:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td` (right-aligned)
_CSS = """
.loravet{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f24;background:#fff}
.loravet h1{font-size:22px;margin:0 0 4px}
.loravet h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
.loravet h3{font-size:15px;margin:18px 0 6px} .loravet table{border-collapse:collapse;margin:8px 0;font-size:13px}
.loravet.loravet td,.loravet.loravet th{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top;text-align:left;
max-width:280px;overflow-wrap:anywhere}
.loravet table.cmp td:last-child{font-size:12px;color:#57606a;min-width:220px} .loravet th{background:#f6f8fa}
.loravet .win{background:#dafbe1;font-weight:600} .loravet .sev-critical{color:#fff;background:#a40e26}
.loravet .sev-high{color:#fff;background:#cf222e} .loravet .sev-medium{background:#fff8c5}
.loravet .sev-low{background:#ddf4ff} .loravet .sev-info{background:#f6f8fa}
.loravet .badge{display:inline-block;padding:1px 6px;border-radius:10px;font-size:12px}
.loravet .out-loads{color:#1a7f37;font-weight:600} .loravet .out-partial{color:#9a6700;font-weight:600}
.loravet .out-inert,.loravet .out-fails{color:#cf222e;font-weight:700} .loravet .out-unknown{color:#57606a}
.loravet .pref{font-size:16px;padding:10px 14px;background:#dafbe1;border:1px solid #4ac26b;border-radius:6px;
margin:8px 0} .loravet .nopref{background:#ffebe9;border-color:#ff8182} .loravet details{margin:4px 0}
.loravet pre{background:#f6f8fa;padding:6px;overflow:auto;font-size:12px;max-height:240px}
.loravet .plots{display:flex;flex-wrap:wrap;gap:16px} .loravet .muted{color:#57606a;font-size:12px}
"""

_PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#0a3069", "#bc4c00", "#57606a"]


def _bar_chart(title: str, items: list[tuple[str, float]], unit: str, color: str | None = None) -> str:
    if not items:
        return ""
    width, bar_h, label_w = 520, 22, 170
    vmax = max((v for _, v in items), default=0) or 1
    h = 30 + bar_h * len(items)
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{h}" '
        f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="16" font-size="13" font-weight="600">'
        f"{escape(title)}</text>"
    ]
    for i, (label, v) in enumerate(items):
        y = 26 + i * bar_h
        w = max(1.0, (width - label_w - 90) * v / vmax)
        parts.append(
            f'<text x="0" y="{y + 14}" font-size="12">{escape(label[:26])}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 6}" '
            f'fill="{color or _PALETTE[i % len(_PALETTE)]}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="11">{v:,.3g} {unit}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _line_chart(
    title: str, series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, diagonal: bool = False
) -> str:
    pts = [p for s in series.values() for p in s]
    if not pts:
        return ""
    width, height, pad = 520, 300, 44
    xmin, xmax = min(p[0] for p in pts), max(p[0] for p in pts)
    ymin, ymax = min(0.0, min(p[1] for p in pts)), max(p[1] for p in pts)
    xmax = xmax if xmax > xmin else xmin + 1
    ymax = ymax if ymax > ymin else ymin + 1

    def sx(x: float) -> float:
        return pad + (width - pad - 10) * (x - xmin) / (xmax - xmin)

    def sy(y: float) -> float:
        return height - pad - (height - pad - 24) * (y - ymin) / (ymax - ymin)

    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="16" font-size="13" font-weight="600">'
        f'{escape(title)}</text><line x1="{pad}" y1="{height - pad}" x2="{width - 10}" y2="{height - pad}" '
        f'stroke="#57606a"/><line x1="{pad}" y1="24" x2="{pad}" y2="{height - pad}" stroke="#57606a"/>'
        f'<text x="{width / 2}" y="{height - 8}" font-size="11" text-anchor="middle">{escape(xlabel)}</text>'
        f'<text x="10" y="{height / 2}" font-size="11" transform="rotate(-90 10 {height / 2})" '
        f'text-anchor="middle">{escape(ylabel)}</text>'
        f'<text x="{pad}" y="{height - pad + 14}" font-size="10">{xmin:g}</text>'
        f'<text x="{width - 30}" y="{height - pad + 14}" font-size="10">{xmax:g}</text>'
        f'<text x="{pad - 4}" y="{sy(ymax) + 4:.1f}" font-size="10" text-anchor="end">{ymax:.3g}</text>'
    ]
    if diagonal:
        parts.append(
            f'<line x1="{sx(xmin):.1f}" y1="{sy(ymin):.1f}" x2="{sx(xmax):.1f}" y2="{sy(ymax):.1f}" '
            'stroke="#d0d7de" stroke-dasharray="4"/>'
        )
    for i, (name, s) in enumerate(series.items()):
        color = _PALETTE[i % len(_PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(s))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        parts.append(
            f'<text x="{width - 150}" y="{40 + 14 * i}" font-size="11" fill="{color}">{escape(name[:24])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_LAYER = re.compile(r"\.(\d+)\.(.+)$")


def _norm_plot(a: AdapterReport) -> str:
    stats = a.extra.get("update_stats") or {}
    series: dict[str, list[tuple[float, float]]] = {}
    for module, norm in zip(stats.get("module", []), stats.get("norm", []), strict=False):
        m = _LAYER.search(module)
        if not m or norm is None:
            continue
        series.setdefault(m.group(2).rsplit(".", 1)[-1], []).append((float(m.group(1)), float(norm)))
    return _line_chart(f"{a.name}: update norm ‖scaling·BA‖ per layer", series, "layer", "Frobenius norm")


def _findings_html(a: AdapterReport) -> str:
    if not a.findings:
        return "<p>No findings.</p>"
    out = []
    for sev in sorted(Severity, reverse=True):
        group = [f for f in a.findings if f.severity == sev]
        if not group:
            continue
        out.append(f"<h3>{sev.label} ({len(group)})</h3>")
        for f in group:
            rule = FINDING_RULES.get(f.code)
            fix = f"<div><b>Fix:</b> {escape(rule.fix)}</div>" if rule else ""
            evidence = escape(json.dumps(f.evidence, indent=1, default=str)[:4000])
            out.append(
                f'<details open><summary><span class="badge sev-{sev.label}">{sev.label}</span> '
                f"<code>{escape(f.code)}</code> {escape(f.message)}</summary>{fix}"
                f"<pre>{evidence}</pre></details>"
            )
    return "".join(out)


def _comparison_html(report: Report) -> str:
    comp = report.comparison
    if not comp:
        return ""
    names = [a.name for a in report.adapters]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for row in comp.rows:
        cells = "".join(
            f'<td class="{"win" if row.winner == n else ""}">{escape(fmt(row.values.get(n)))}</td>' for n in names
        )
        rows.append(
            f"<tr><th>{escape(row.aspect)}</th>{cells}<td>{escape(row.winner or '-')}</td>"
            f"<td>{escape(row.reason)}</td></tr>"
        )
    cls = "pref" if comp.preferred else "pref nopref"
    pref = f'<div class="{cls}">Depend on: <b>{escape(comp.preferred or "none")}</b> — {escape(comp.reason)}</div>'
    return (
        f"<h2>Comparison</h2>{pref}<table class='cmp'><tr><th>aspect</th>{head}<th>winner</th><th>reason</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _evaluation_html(report: Report) -> str:
    ev = report.evaluation
    if ev is None:
        return ""

    def ci(s: ScoreBlock) -> str:
        c = s.ci95
        return f"{c[0]:.3f} - {c[1]:.3f}" if c else "-"

    agree = ev.agreement.get("base") or {}
    degen = ev.degenerate or {}
    rows = "".join(
        f"<tr><td>{escape(n)}</td><td>{fmt(s.rule_mean_auc)}</td><td>{ci(s)}</td>"
        f"<td>{fmt(s.auc)}</td><td>{fmt(agree.get(n)) if n != 'base' else 'control'}</td>"
        f"<td>{escape('yes: ' + degen[n] if n in degen else '-')}</td></tr>"
        for n, s in ev.scores.items()
    )
    return (
        f"<h2>Evaluation</h2><p>metric {escape(ev.metric)}, {ev.rows} rows, prompt "
        f"{escape(ev.prompt_version)}</p><table><tr><th>model</th><th>rule_mean_auc</th>"
        f"<th>95% CI</th><th>auc</th><th>agreement with base</th><th>degenerate</th></tr>{rows}</table>"
        f"{_evaluation_notes(ev)}"
        f"<details><summary>prompt</summary><pre>{escape(ev.prompt)}</pre></details>"
        f"<div class='plots'>{''.join(_evaluation_plots(ev))}</div>"
    )


def _evaluation_plots(ev: Evaluation) -> list[str]:
    """Each model's score histogram, and a ROC curve per rule."""
    plots = []
    for k, (name, h) in enumerate(ev.histograms.items()):
        plots.append(
            _bar_chart(
                f"{name}: score distribution",
                [(lbl, float(c)) for lbl, c in h],
                "rows",
                color=_PALETTE[k % len(_PALETTE)],
            )
        )
    for rule, curves in (ev.roc or {}).items():
        plots.append(
            _line_chart(
                f"ROC: {rule[:50]}",
                {n: [(p[0], p[1]) for p in pts] for n, pts in curves.items()},
                "false positive rate",
                "true positive rate",
                diagonal=True,
            )
        )
    return plots


def _evaluation_notes(ev: Evaluation) -> str:
    """Adapters not loaded, the answer tokens, the run's notes."""
    extra = "".join(f"<p><b>not loaded</b> {escape(k)}: {escape(v)}</p>" for k, v in (ev.skipped or {}).items())
    tokens = ev.answer_tokens
    if tokens:
        extra += (
            "<p class='muted'>answer tokens: yes "
            + escape(", ".join(f"{t!r} ({i})" for i, t in zip(tokens["yes"], tokens["yes_strings"], strict=False)))
            + "; no "
            + escape(", ".join(f"{t!r} ({i})" for i, t in zip(tokens["no"], tokens["no_strings"], strict=False)))
            + "</p>"
        )
    if ev.notes:
        extra += "<ul class='notes'>" + "".join(f"<li>{escape(str(n))}</li>" for n in ev.notes) + "</ul>"
    return extra


def _fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def render_html(report: Report, fragment: bool = False) -> str:
    adapters = report.adapters
    summary_rows = "".join(
        f"<tr><td><b>{escape(a.name)}</b></td><td class='out-{a.load_outcome}'>{a.load_outcome}</td>"
        f"<td>{escape(fmt(a.base['name'] if a.base else None))}</td>"
        f"<td>{escape(fmt((a.architecture or {}).get('best_match')))}</td>"
        f"<td>{_fmt_int(a.trainable_params)}</td>"
        f"<td>{len(a.findings)}</td><td>{escape(a.worst.label if a.worst is not None else '-')}</td></tr>"
        for a in adapters
    )
    bars = [
        _bar_chart("trainable parameters", [(a.name, float(a.trainable_params or 0)) for a in adapters], "params"),
        _bar_chart(
            "weight file size", [(a.name, float((a.weights or {}).get("bytes", 0)) / 1e6) for a in adapters], "MB"
        ),
    ]
    sections = []
    for a in adapters:
        table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in adapter_rows(a))
        sections.append(
            f"<h2 id='{escape(a.name)}'>{escape(a.name)}</h2><p class='muted'>{escape(a.source)}</p>"
            f"<table>{table}</table><div class='plots'>{_norm_plot(a)}</div>{_findings_html(a)}"
        )
    body = (
        f"<h1>loravet {escape(report.command)} report</h1>"
        f"<p class='muted'>schema loravet/1 · {len(adapters)} adapter(s)</p>"
        f"{_comparison_html(report)}<h2>Summary</h2><table><tr><th>adapter</th><th>load outcome</th>"
        f"<th>base</th><th>traced from tensors</th><th>trainable params</th><th>findings</th><th>worst</th></tr>"
        f"{summary_rows}</table><div class='plots'>{''.join(bars)}</div>{_evaluation_html(report)}" + "".join(sections)
    )
    if fragment:
        # in a notebook: style the report, not the page
        return f"<div class='loravet'><style>{scope_css(_CSS)}</style>{body}</div>"
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>loravet report</title>"
        f"<style>body{{margin:0;background:#fff}}{_CSS}</style></head><body><div class='loravet'>{body}</div>"
        "</body></html>\n"
    )

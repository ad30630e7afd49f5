"""The `loravet scan` summary as table (rich), Markdown, HTML or JSON."""

from __future__ import annotations

import html
import io
import json
from typing import Any

__all__ = ["render_scan"]


def _sections(d: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every part of the summary, shared by all text formats."""
    n = max(d["adapters"], 1)
    out: list[tuple[str, list[str], list[list[str]]]] = []
    out.append(("Outcomes", ["outcome", "adapters", "share"],
                [[k, str(v), f"{100 * v / n:.1f}%"] for k, v in d["outcomes"].items()]))
    out.append(("Findings by code", ["code", "adapters"], [[k, str(v)] for k, v in d["findings_by_code"].items()]))
    out.append(("Adapters by worst severity", ["severity", "adapters"],
                [[k, str(v)] for k, v in d["adapters_by_worst_severity"].items()]))
    out.append((f"Unsafe pickles ({d['unsafe_pickles']['count']})", ["adapter", "severity", "what"],
                [[a["spec"], a["severity"], a["message"]] for a in d["unsafe_pickles"]["adapters"]]))
    out.append((f"Traced bases (architecture-mismatch: {d['architecture_mismatch']})", ["shapes fit", "adapters"],
                [[k, str(v)] for k, v in d["traced_bases"].items()]))
    out.append((f"vLLM incompatibilities ({d['vllm_incompatible']['count']})", ["adapter", "why"],
                [[a["spec"], a["message"]] for a in d["vllm_incompatible"]["adapters"]]))
    out.append((f"Could not be checked ({d['errors']['count']})", ["reason", "adapters"],
                [[k, str(v)] for k, v in d["errors"]["by_reason"].items()]))
    out.append(("Worst offenders", ["adapter", "outcome", "worst", "findings"],
                [[w["spec"], str(w["load_outcome"]), str(w["worst_severity"]), ", ".join(w["codes"])]
                 for w in d["worst_offenders"]]))
    return out


def _head(d: dict[str, Any]) -> str:
    fb = d["fetched_bytes"]
    return (f"loravet scan of {d['source']}: {d['adapters']} adapters, {d['checked']} checked, "
            f"{d['errors']['count']} could not be checked; fetched {fb['total']:,} bytes "
            f"({fb['per_adapter']:,} per adapter)")


def render_scan(summary: dict[str, Any], fmt: str, color: bool = False, width: int | None = None) -> str:
    if fmt == "json":
        return json.dumps(summary, indent=2) + "\n"
    if fmt == "md":
        lines = [f"# {_head(summary)}", ""]
        for title, header, rows in _sections(summary):
            lines += [f"## {title}", ""]
            if not rows:
                lines += ["none", ""]
                continue
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
            lines.append("")
        return "\n".join(lines)
    if fmt == "html":
        parts = ["<!doctype html><html><head><meta charset='utf-8'><title>loravet scan</title><style>"
                 "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;"
                 "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
                 "th{background:#f3f3f3}</style></head><body>", f"<h1>{html.escape(_head(summary))}</h1>"]
        for title, header, rows in _sections(summary):
            parts.append(f"<h2>{html.escape(title)}</h2>")
            if not rows:
                parts.append("<p>none</p>")
                continue
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
            parts.append("</table>")
        parts.append("</body></html>\n")
        return "\n".join(parts)
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    width = width or 120
    console = Console(file=buf, force_terminal=color, width=width, color_system="standard" if color else None)
    console.print(_head(summary), markup=False)
    for title, header, rows in _sections(summary):
        if not rows:
            continue
        table = Table(title=title, title_justify="left", min_width=min(len(title), width))  # title on one line
        for h in header:
            table.add_column(h, overflow="fold")
        for r in rows:
            table.add_row(*r)
        console.print(table)
    return buf.getvalue()

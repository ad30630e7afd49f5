"""SARIF 2.1.0, so findings show up in code-scanning UIs."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from loravet.findings import RULES, Severity
from loravet.report import Report

__all__ = ["render_sarif"]

_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note",
          Severity.INFO: "note"}
_SCORE = {Severity.CRITICAL: "9.5", Severity.HIGH: "7.5", Severity.MEDIUM: "5.0", Severity.LOW: "2.0",
          Severity.INFO: "0.0"}


def _tool_version() -> str:
    try:
        return version("loravet")
    except PackageNotFoundError:  # pragma: no cover
        return "0"


def render_sarif(report: Report) -> str:
    rules = [{
        "id": r.code, "name": "".join(p.title() for p in r.code.split("-")),
        "shortDescription": {"text": r.title}, "fullDescription": {"text": r.detects},
        "help": {"text": f"{r.why} Fix: {r.fix} Example: {r.example}",
                 "markdown": f"**Why it matters.** {r.why}\n\n**How to fix.** {r.fix}\n\n**Example.** {r.example}"},
        "defaultConfiguration": {"level": _LEVEL[r.severity]},
        "properties": {"security-severity": _SCORE[r.severity], "tags": ["lora", "peft"]},
    } for r in RULES.values()]
    index = {r["id"]: i for i, r in enumerate(rules)}
    results: list[dict[str, Any]] = []
    for a in report.adapters:
        for f in a.findings:
            file = f.evidence.get("file") or (a.weights or {}).get("file") or "adapter_config.json"
            uri = (Path(a.path) / str(file)).as_posix()
            results.append({
                "ruleId": f.code, "ruleIndex": index.get(f.code, 0), "level": _LEVEL[f.severity],
                "message": {"text": f"[{a.name}] {f.message}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
                "properties": {"adapter": a.name, "severity": f.severity.label,
                               "security-severity": _SCORE[f.severity], "evidence": f.evidence},
            })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "loravet", "version": _tool_version(), "rules": rules}},
                  "results": results}],
    }
    return json.dumps(doc, indent=2, default=str) + "\n"

"""SARIF 2.1.0, so findings show up in code-scanning UIs: relative URIs under a ``uriBaseId``, a stable
``partialFingerprints`` entry per result; tests/test_newcomer.py validates it against the official schema."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from loravet.findings import FINDING_RULES, Severity
from loravet.results import Report

__all__ = ["render_sarif"]

_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note",
          Severity.INFO: "note"}
_SCORE = {Severity.CRITICAL: "9.5", Severity.HIGH: "7.5", Severity.MEDIUM: "5.0", Severity.LOW: "2.0",
          Severity.INFO: "0.0"}


def _tool_version() -> str:
    # lazy: importlib.metadata pulls in email and socket (~20 ms of every cold `loravet check`, which is not SARIF)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("loravet")
    except PackageNotFoundError:  # pragma: no cover
        return "0"


_SRCROOT = "%SRCROOT%"


def _location_base(source: str, n: int) -> tuple[str, str]:
    """Where a finding's file is, without an absolute path: a folder under the working directory is relative to
    it (``%SRCROOT%``, what code-scanning UIs resolve against the repository); anything else (a zip, whose
    extraction folder is gone after the run, a hub id, a folder elsewhere) is relative to the adapter itself,
    under a base id of its own that says where it came from."""
    try:
        folder = Path(source)
        if folder.is_dir():
            rel = folder.resolve().relative_to(Path.cwd().resolve()).as_posix()
            return ("" if rel == "." else rel + "/"), _SRCROOT
    except (OSError, ValueError):
        pass
    return "", f"ADAPTER{n}"


def render_sarif(report: Report) -> str:
    rules = [{
        "id": r.code, "name": "".join(p.title() for p in r.code.split("-")),
        "shortDescription": {"text": r.title}, "fullDescription": {"text": r.detects},
        "help": {"text": f"{r.why} Fix: {r.fix} Example: {r.example}",
                 "markdown": f"**Why it matters.** {r.why}\n\n**How to fix.** {r.fix}\n\n**Example.** {r.example}"},
        "defaultConfiguration": {"level": _LEVEL[r.severity]},
        "properties": {"security-severity": _SCORE[r.severity], "tags": ["lora", "peft"]},
    } for r in FINDING_RULES.values()]
    index = {r["id"]: i for i, r in enumerate(rules)}
    results: list[dict[str, Any]] = []
    bases: dict[str, dict[str, Any]] = {}
    for n, a in enumerate(report.adapters):
        prefix, base_id = _location_base(a.source, n)
        if base_id not in bases:
            bases[base_id] = ({"description": {"text": f"adapter {a.name} from {a.source}"}}
                              if base_id != _SRCROOT else {"description": {"text": "the working directory"}})
        for f in a.findings:
            named = f.evidence.get("file")  # a list when findings in several files merged
            files = [str(x) for x in named] if isinstance(named, list) else [
                str(named or (a.weights or {}).get("file") or "adapter_config.json")]
            uris = [f"{prefix}{file}" if not Path(file).is_absolute() else Path(file).name for file in files]
            digest = hashlib.sha256(f"{f.code}|{a.name}|{uris[0]}".encode()).hexdigest()
            results.append({
                "ruleId": f.code, "ruleIndex": index.get(f.code, 0), "level": _LEVEL[f.severity],
                "message": {"text": f"[{a.name}] {f.message}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": base_id}}}
                              for uri in uris],
                "partialFingerprints": {"loravetFinding/v1": digest},
                "properties": {"adapter": a.name, "severity": f.severity.label,
                               "security-severity": _SCORE[f.severity], "evidence": f.evidence},
            })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "loravet", "version": _tool_version(), "rules": rules}},
                  "originalUriBaseIds": bases, "results": results}],
    }
    return json.dumps(doc, indent=2, default=str) + "\n"

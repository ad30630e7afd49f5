"""Security: every pickle in the adapter's folder interpreted symbolically (loravet.checks.pickles), never
unpickled. A file the scan does not clear is refused to every later stage."""

from __future__ import annotations

from loravet.checks.pickles import pickle_findings
from loravet.context import AdapterContext, Collector
from loravet.findings import Finding

__all__ = ["security_stage"]


def security_stage(ctx: AdapterContext) -> list[Finding]:
    report = ctx.report
    collected = Collector.like(report)
    scans = pickle_findings(collected, ctx.folder)
    report.extra.update(collected.extra)  # pickles_scanned: what was scanned and what each file holds
    ctx.refused_files = {s.file for s in scans if s.worst != "allowed" or s.errors or s.incomplete}
    return collected.findings

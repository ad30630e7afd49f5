"""`loravet demo [DIR]`: build the scenario locally (no network) and vet it."""

from __future__ import annotations

import time
from pathlib import Path

from loravet.api import compare
from loravet.report import Report
from loravet.reports.render import render

__all__ = ["run_demo"]

_COST = {
    "fails": "PEFT raises on load: a crash at the start of your notebook",
    "inert": "loads without error but changes nothing: every prediction is the base model's",
    "partial": "loads, but part of it is dropped or untrained",
}


def _summary(report: Report, out: Path, seconds: float, canary_exists: bool) -> str:
    comp = report.comparison or {}
    lines = ["", f"loravet demo: {len(report.adapters)} adapters vetted in {seconds:.1f} s", ""]
    pref = comp.get("preferred")
    lines.append(f"Depend on: {pref or 'none'}")
    lines.append(f"  why: {comp.get('reason', '')}")
    lines.append("")
    lines.append("What the others would have cost you:")
    for a in report.adapters:
        if a.name == pref:
            continue
        worst = sorted(a.findings, key=lambda f: -f.severity)
        if a.finding("unsafe-pickle"):
            cost = "opening it runs code from a stranger (unsafe pickle; loravet never unpickled it)"
        elif a.load_outcome in _COST:
            cost = _COST[a.load_outcome]
        elif worst:
            cost = f"{worst[0].code}: {worst[0].message}"
        else:
            cost = "nothing found against it"
        lines.append(f"  {a.name:28} {a.load_outcome:8} {cost}")
    lines.append("")
    lines.append(f"canary file created by a pickle: {'YES (bug!)' if canary_exists else 'no'}")
    lines.append(f"reports: {out / 'report.html'}, {out / 'report.md'}, {out / 'report.json'}")
    return "\n".join(lines) + "\n"


def run_demo(out: Path) -> tuple[Report, str]:
    from loravet.demo.scenario import build_static_scenario

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    scenario = build_static_scenario(out)
    report = compare([str(p) for p in scenario["adapters"]], base=scenario["base"],
                     eval_data=str(scenario["holdout"]))
    report.command = "demo"
    for fmt, name in (("html", "report.html"), ("md", "report.md"), ("json", "report.json")):
        (out / name).write_text(render(report, fmt), encoding="utf-8")
    seconds = time.perf_counter() - start
    return report, _summary(report, out, seconds, scenario["canary"].exists())

"""The findings of a load's outcome (what lands where, what stays at its init, what cannot move the output),
worded once for both ways of deciding it: the predictor (checks/peft_load) and the replay (checks/replay)."""

from __future__ import annotations

from dataclasses import dataclass, field

from loravet.findings import Finding, Severity, make_finding
from loravet.results import FindingSink

__all__ = ["LoadKeys", "add_load_findings", "load_findings"]


@dataclass
class LoadKeys:
    missing_keys: list[str] = field(default_factory=list)
    missing_modules: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    overwritten_base: list[str] = field(default_factory=list)
    random_init_modules: list[str] = field(default_factory=list)
    random_init_why: str = ""
    zero_modules: list[str] = field(default_factory=list)
    landed_modules: int = 0


def add_load_findings(sink: FindingSink, keys: LoadKeys, base_name: str) -> None:
    """load_findings into `sink` (the replay adds them to the report it rewrites)."""
    for f in load_findings(keys, base_name):
        sink.add(f)


def load_findings(keys: LoadKeys, base_name: str) -> list[Finding]:
    out: list[Finding] = []
    if keys.missing_keys:
        out.append(
            make_finding(
                "missing-weights",
                f"{len(keys.missing_keys)} parameter(s) of "
                f"{len(keys.missing_modules)} created module(s) get no tensor from the file and stay "
                "at their initial value",
                count=len(keys.missing_keys),
                modules=keys.missing_modules[:30],
            )
        )
    if keys.unexpected_keys:
        out.append(
            make_finding(
                "unused-weights",
                f"{len(keys.unexpected_keys)} tensor(s) in the file land nowhere on "
                f"{base_name} and are silently dropped",
                count=len(keys.unexpected_keys),
                tensors=keys.unexpected_keys[:30],
            )
        )
    if keys.overwritten_base:
        out.append(
            make_finding(
                "base-weights-overwritten",
                f"{len(keys.overwritten_base)} tensor(s) replace base "
                "parameters directly (not adapter parameters, not modules_to_save)",
                tensors=keys.overwritten_base[:30],
            )
        )
    if keys.random_init_modules:
        out.append(
            make_finding(
                "random-init-modules",
                f"{len(keys.random_init_modules)} created module(s) get no "
                "tensor and start from random values" + keys.random_init_why,
                modules=keys.random_init_modules[:30],
            )
        )
    if keys.zero_modules:
        everywhere = len(keys.zero_modules) == keys.landed_modules
        out.append(
            make_finding(
                "zero-update" if everywhere else "zero-update-partial",
                f"the update is exactly zero on {len(keys.zero_modules)} of {keys.landed_modules} modules "
                "where tensors land" + (" (all of them)" if everywhere else ""),
                severity=Severity.HIGH if everywhere else Severity.MEDIUM,
                modules=keys.zero_modules[:30],
                count=len(keys.zero_modules),
            )
        )
    return out

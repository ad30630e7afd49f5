"""What the hub source needs to say about an adapter's weight file: its names, and where its findings go.

The file itself is read by loravet.checks.weights_file, the same reader the local pipeline uses.
"""

from __future__ import annotations

from typing import Any, Protocol

from loravet.findings import Finding

__all__ = ["SAFETENSORS", "TORCH_BIN", "FindingSink", "ReportSink"]

SAFETENSORS, TORCH_BIN = "adapter_model.safetensors", "adapter_model.bin"


class FindingSink(Protocol):
    """Anything findings can be added to (an AdapterReport, or a collector that hands them on)."""

    def add(self, finding: Finding) -> None: ...


class ReportSink(FindingSink, Protocol):
    """What the hub source writes into an adapter's report after the checks (AdapterReport has all of it)."""

    load_outcome: str
    extra: dict[str, Any]

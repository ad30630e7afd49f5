"""The weight file PEFT would load from an adapter folder (safetensors first), read without running it.

Shared by the local pipeline and the `hf:` adapters whose weight file was fetched whole
(loravet.sources.remote): problems become findings on the report, never exceptions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from loravet.adapter.limits import FileRefused, open_regular
from loravet.adapter.safetensors_file import SafetensorsError, read_safetensors
from loravet.adapter.tensors import WeightFile
from loravet.adapter.torch_file import TorchFileError, UnsafeTorchFile, read_torch_file
from loravet.findings import Finding, Severity, make_finding

__all__ = ["SAFETENSORS", "TORCH_BIN", "FindingSink", "ReportSink", "load_weights"]

SAFETENSORS, TORCH_BIN = "adapter_model.safetensors", "adapter_model.bin"


class FindingSink(Protocol):
    """Anything findings can be added to (an AdapterReport, or a collector that hands them on)."""

    def add(self, finding: Finding) -> None: ...


class ReportSink(FindingSink, Protocol):
    """What the hub source writes into an adapter's report after the checks (AdapterReport has all of it)."""

    load_outcome: str
    extra: dict[str, Any]


def load_weights(folder: Path, report: FindingSink) -> WeightFile | None:
    """The file PEFT would load (safetensors first). Problems become findings on `report`."""
    st, bn = folder / SAFETENSORS, folder / TORCH_BIN
    for candidate in (st, bn):
        if candidate.is_symlink() or candidate.exists():
            # no FIFO, device or socket; a link only inside the folder (or its hub repository's blobs/)
            try:
                with open_regular(candidate, 1 << 62, folder):
                    pass
            except FileRefused as exc:
                report.add(make_finding("unreadable-file", str(exc), file=candidate.name))
                return None
    if st.exists():
        try:
            return read_safetensors(st)
        except SafetensorsError as exc:
            report.add(make_finding("unreadable-file", str(exc), file=st.name))
            return None
    if bn.exists():
        try:
            return read_torch_file(bn)
        except UnsafeTorchFile as exc:
            sev = Severity.CRITICAL if exc.verdict == "dangerous" else Severity.HIGH
            # worded as the pickle scan words it, so that the two (same file, same import) merge into one
            # message instead of the same fact said twice
            why = " (known code execution)" if exc.verdict == "dangerous" else " (not on the allow-list)"
            report.add(
                make_finding(
                    "unsafe-pickle",
                    f"{bn.name} imports {exc.module}.{exc.name}{why}: never opened",
                    severity=sev,
                    file=bn.name,
                    globals=[f"{exc.module}.{exc.name}"],
                    verdict=exc.verdict,
                )
            )
            return None
        except TorchFileError as exc:
            report.add(make_finding("unreadable-file", str(exc), file=bn.name))
            return None
    return None

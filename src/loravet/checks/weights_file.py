"""The weight file PEFT would load (safetensors first), read without running it; problems as findings.

A module of its own so that the hub source (loravet.sources.remote), which reads a fetched file the same way,
needs nothing else of the pipeline.
"""

from __future__ import annotations

from pathlib import Path

from loravet.adapter.limits import FileRefused, PathEscape, open_regular
from loravet.adapter.safetensors_file import SafetensorsError, read_safetensors
from loravet.adapter.tensors import WeightFile
from loravet.findings import Finding, Severity, make_finding
from loravet.results import FindingSink

__all__ = ["BIN", "SAFETENSORS", "load_weights", "read_weights", "weights_present"]

SAFETENSORS, BIN = "adapter_model.safetensors", "adapter_model.bin"


def read_weights(folder: Path) -> tuple[WeightFile | None, list[Finding]]:
    """The file PEFT would load (safetensors first), or None and why not."""
    st, bn = folder / SAFETENSORS, folder / BIN
    for candidate in (st, bn):
        refused = _refused(candidate, folder)
        if refused is not None:
            return None, [refused]
    if st.exists():
        try:
            return read_safetensors(st), []
        except SafetensorsError as exc:
            return None, [make_finding("unreadable-file", str(exc), file=st.name)]
    if bn.exists():
        return _read_bin(bn)
    return None, []


def _refused(candidate: Path, folder: Path) -> Finding | None:
    """No FIFO, device or socket; a link only inside the folder (or its hub repository's blobs/)."""
    if not (candidate.is_symlink() or candidate.exists()):
        return None
    try:
        with open_regular(candidate, 1 << 62, folder):
            return None
    except FileRefused as exc:
        code = "path-escape" if isinstance(exc, PathEscape) else "unreadable-file"
        return make_finding(code, str(exc), file=candidate.name)


def _read_bin(bn: Path) -> tuple[WeightFile | None, list[Finding]]:
    # lazy (cold start, #12): the torch-file reader and the symbolic pickle reader under it load only for a .bin
    from loravet.adapter.torch_file import TorchFileError, UnsafeTorchFile, read_torch_file

    try:
        return read_torch_file(bn), []
    except UnsafeTorchFile as exc:
        sev = Severity.CRITICAL if exc.verdict == "dangerous" else Severity.HIGH
        # worded as the pickle scan words it, so that the two (same file, same import) merge into one
        # message instead of the same fact said twice
        why = " (known code execution)" if exc.verdict == "dangerous" else " (not on the allow-list)"
        return None, [
            make_finding(
                "unsafe-pickle",
                f"{bn.name} imports {exc.module}.{exc.name}{why}: never opened",
                severity=sev,
                file=bn.name,
                globals=[f"{exc.module}.{exc.name}"],
                verdict=exc.verdict,
            )
        ]
    except TorchFileError as exc:
        return None, [make_finding("unreadable-file", str(exc), file=bn.name)]


def load_weights(folder: Path, sink: FindingSink) -> WeightFile | None:
    """read_weights for a caller that collects findings in a sink (the hub source)."""
    weights, findings = read_weights(folder)
    for f in findings:
        sink.add(f)
    return weights


def weights_present(folder: Path) -> bool:
    return (folder / SAFETENSORS).exists() or (folder / BIN).exists()

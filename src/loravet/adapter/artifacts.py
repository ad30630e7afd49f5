"""Training artifacts beside an adapter: what they are, how many rows, which columns.

Pickles are never unpickled: loravet's symbolic reader (loravet.adapter.pickle_vm) interprets them and
pandas DataFrames / lists of rows are rebuilt from their structure (loravet.adapter.pickle_values);
CSV, JSONL and Parquet with their own readers; trainer_state.json as JSON.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loravet.adapter.containers import ContainerError, decompress_bounded, read_upto
from loravet.adapter.limits import FileRefused, read_prefix
from loravet.adapter.pickle_policy import judge_global

if TYPE_CHECKING:
    from loravet.adapter.pickle_values import Table

__all__ = ["Artifact", "find_artifacts", "read_pickled_table"]

MAX_ARTIFACT_BYTES = 512 * 1024 * 1024
# CSV / JSONL are read as a sample: the first 64 MiB, streamed, only the text and label columns kept (a 200 MB
# jsonl once took 5.4 GB as a list of dicts)
MAX_TEXT_TABLE_BYTES = 64 * 1024 * 1024
_TABLE_EXT = (
    ".pkl",
    ".pickle",
    ".csv",
    ".tsv",
    ".parquet",
    ".jsonl",
    ".json",
    ".joblib",
    ".pkl.gz",
    ".pkl.bz2",
    ".pkl.xz",
    ".pickle.gz",
    ".pickle.bz2",
    ".pickle.xz",
)
_KIND = re.compile(r"(?P<kind>train|trn|val|valid|validation|dev|test|holdout|oof)", re.I)
EVIDENCE_FILES = (
    "trainer_state.json",
    "training_args.bin",
    "all_results.json",
    "train_results.json",
    "eval_results.json",
)


@dataclass
class Artifact:
    file: str
    kind: str  # train | val | test | trainer_state | training_args | log | other
    format: str
    rows: int | None = None
    columns: list[str] | None = None
    text_column: str | None = None
    label_column: str | None = None
    label_balance: dict[str, int] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    texts: list[str] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "kind": self.kind,
            "format": self.format,
            "rows": self.rows,
            "columns": self.columns,
        }
        for key in ("text_column", "label_column", "label_balance", "error"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.details)
        return out


def read_pickled_table(data: bytes) -> Table:
    """Columns and rows of a pickled DataFrame or list of row dicts, rebuilt without unpickling.
    Raises ValueError (PickleError, Unreconstructable) for anything else, and for a pickle naming a
    global outside the allow-list."""
    # lazy (cold start, #12): the symbolic reader loads only when a pickled artifact is there to read
    from loravet.adapter.pickle_values import table_of
    from loravet.adapter.pickle_vm import read_pickle

    result = read_pickle(data)
    for use in result.globals:
        if judge_global(use.module, use.name) != "allowed":
            raise ValueError(f"not opened: imports {use.module}.{use.name} (outside the allow-list)")
    return table_of(result.value)


def _kind_of(name: str) -> str:
    lowered = name.lower()
    if lowered == "trainer_state.json":
        return "trainer_state"
    if lowered == "training_args.bin":
        return "training_args"
    if lowered.endswith((".log", ".txt")) and ("log" in lowered or "train" in lowered):
        return "log"
    m = _KIND.search(Path(lowered).stem)
    if not m:
        return "other"
    k = m.group("kind")
    return {"trn": "train", "valid": "val", "validation": "val", "dev": "val", "holdout": "test", "oof": "val"}.get(
        k, k
    )


_TEXT_COLUMNS = ("body", "text", "comment", "comment_text", "sentence", "content", "input", "prompt")
_LABEL_COLUMNS = ("rule_violation", "label", "labels", "target", "y")


def _describe_table(
    art: Artifact,
    columns: list[str],
    rows: list[dict[str, Any]] | None,
    texts: list[str] | None,
    labels: list[Any] | None,
) -> None:
    art.columns = columns
    art.text_column = next((c for c in _TEXT_COLUMNS if c in columns), None)
    art.label_column = next((c for c in _LABEL_COLUMNS if c in columns), None)
    if texts is not None:
        art.texts = texts
    if labels is not None:
        balance: dict[str, int] = {}
        for v in labels:
            balance[str(v)] = balance.get(str(v), 0) + 1
        if len(balance) <= 20:
            art.label_balance = dict(sorted(balance.items()))


def _read_rows(records: list[dict[str, Any]], art: Artifact) -> None:
    art.rows = len(records)
    if records:
        cols = list(records[0].keys())
        text = next((c for c in _TEXT_COLUMNS if c in cols), None)
        label = next((c for c in _LABEL_COLUMNS if c in cols), None)
        _describe_table(
            art,
            [str(c) for c in cols],
            None,
            [str(r.get(text, "")) for r in records] if text else None,
            [r.get(label) for r in records] if label else None,
        )


def _read_table(table: Table, art: Artifact) -> None:
    art.rows = table.rows
    cols = table.columns
    text = next((c for c in _TEXT_COLUMNS if c in cols), None)
    label = next((c for c in _LABEL_COLUMNS if c in cols), None)
    texts = table.values.get(text) if text else None
    labels = table.values.get(label) if label else None
    _describe_table(art, cols, None, [str(x) for x in texts] if texts is not None else None, labels)
    unread = [c for c in cols if table.values.get(c) is None]
    if unread:
        art.details["columns_not_rebuilt"] = unread[:20]


def _read_text_table(path: Path, art: Artifact, suffix: str) -> None:
    """CSV/TSV/JSONL: the first MAX_TEXT_TABLE_BYTES, streamed and bounded; only the columns the checks use."""
    try:
        data, more = read_prefix(path, MAX_TEXT_TABLE_BYTES, path.parent)
    except FileRefused as exc:
        art.error = str(exc)
        return
    if more:
        data = data[: data.rfind(b"\n") + 1]  # whole lines only
    text = data.decode("utf-8", errors="replace")
    del data
    texts: list[str] = []
    labels: list[Any] = []
    cols: list[str] = []
    rows = 0
    if suffix == ".jsonl":
        for line in io.StringIO(text):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict):
                continue
            if not cols:
                cols = [str(c) for c in rec]
            rows += 1
            texts.append(str(rec.get(_first(cols, _TEXT_COLUMNS) or "", "")))
            labels.append(rec.get(_first(cols, _LABEL_COLUMNS) or ""))
    else:
        import csv  # only for a CSV/TSV artifact: most adapters ship none, and every check starts cold

        csv.field_size_limit(16 * 1024 * 1024)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        cols = [str(c) for c in next(reader, [])]
        ti = cols.index(t) if (t := _first(cols, _TEXT_COLUMNS)) else None
        li = cols.index(lab) if (lab := _first(cols, _LABEL_COLUMNS)) else None
        for row in reader:
            rows += 1
            texts.append(row[ti] if ti is not None and ti < len(row) else "")
            labels.append(row[li] if li is not None and li < len(row) else None)
    art.rows = rows
    has_text, has_label = _first(cols, _TEXT_COLUMNS) is not None, _first(cols, _LABEL_COLUMNS) is not None
    _describe_table(art, cols, None, texts if has_text else None, labels if has_label else None)
    if more:
        art.details["sampled"] = (
            f"only the first {MAX_TEXT_TABLE_BYTES:,} bytes ({rows:,} rows) were read; "
            "the leakage checks see those rows alone"
        )


def _first(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    return next((c for c in wanted if c in columns), None)


def _read_artifact(path: Path, art: Artifact) -> None:
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if size > MAX_ARTIFACT_BYTES:
        art.error = f"{size:,} bytes: over the {MAX_ARTIFACT_BYTES:,}-byte limit, not read"
        return
    if art.kind == "trainer_state":
        _read_trainer_state(path, art)
    elif suffix in (".csv", ".tsv", ".jsonl"):
        _read_text_table(path, art, suffix)
    elif suffix == ".parquet":
        _read_parquet(path, art)
    elif suffix in (".pkl", ".pickle", ".joblib", ".bin", ".gz", ".bz2", ".xz"):
        _read_pickled(path, art)


def _read_trainer_state(path: Path, art: Artifact) -> None:
    """The loss curve and eval metrics of a Trainer's trainer_state.json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        return
    raw_history = data.get("log_history")
    history: list[Any] = raw_history if isinstance(raw_history, list) else []
    losses = [h.get("loss") for h in history if isinstance(h, dict) and isinstance(h.get("loss"), (int, float))]
    evals = {
        k: v
        for h in history
        if isinstance(h, dict)
        for k, v in h.items()
        if k.startswith("eval_") and isinstance(v, (int, float))
    }
    art.details = {
        "global_step": data.get("global_step"),
        "epoch": data.get("epoch"),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "loss_points": len(losses),
        "eval_metrics": evals or None,
    }


def _read_parquet(path: Path, art: Artifact) -> None:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        art.error = "pyarrow is not installed: Parquet not read"
        return
    table = pq.read_table(path)
    cols = table.column_names
    art.rows = table.num_rows
    text = next((c for c in _TEXT_COLUMNS if c in cols), None)
    label = next((c for c in _LABEL_COLUMNS if c in cols), None)
    _describe_table(
        art,
        cols,
        None,
        [str(x) for x in table.column(text).to_pylist()] if text else None,
        table.column(label).to_pylist() if label else None,
    )


def _read_pickled(path: Path, art: Artifact) -> None:
    """A pickled (possibly compressed) table, interpreted symbolically, never unpickled."""
    # lazy (cold start, #12): as in read_pickled_table
    from loravet.adapter.pickle_values import Unreconstructable
    from loravet.adapter.pickle_vm import PickleError

    with path.open("rb") as fh:
        data = read_upto(fh, MAX_ARTIFACT_BYTES + 1)  # not fh.read(n), which reserves n bytes first
    if data.startswith(b"PK"):
        art.format = "torch-zip"
        art.details["note"] = "torch checkpoint: scanned, not loaded as a table"
        return
    try:
        data = decompress_bounded(data, MAX_ARTIFACT_BYTES)
    except ContainerError as exc:
        art.error = f"cannot be read: {exc}"
        return
    try:
        table = read_pickled_table(data)
    except PickleError as exc:
        art.error = f"cannot be read (not executed): {str(exc)[:160]}"
        return
    except Unreconstructable as exc:
        art.details["note"] = f"not read as a table: {str(exc)[:160]}"
        return
    except ValueError as exc:
        art.error = str(exc)[:200]
        return
    _read_table(table, art)


def find_artifacts(folder: Path, skip: set[str] | frozenset[str] = frozenset()) -> list[Artifact]:
    """Every training artifact in the adapter folder (not recursing into siblings). Files in `skip` (pickles
    the scanner refused) are listed but never opened."""
    out: list[Artifact] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return out
    for path in entries:
        if path.is_symlink() or not path.is_file():
            continue
        name = path.name
        lowered = name.lower()
        if lowered.startswith("adapter_") or lowered in ("readme.md", "config.json") or lowered.startswith("tokenizer"):
            continue
        kind = _kind_of(name)
        is_table = lowered.endswith(_TABLE_EXT)
        if not (is_table or kind in ("trainer_state", "training_args", "log")):
            continue
        if lowered.endswith(".json") and kind == "other" and lowered not in EVIDENCE_FILES:
            continue
        fmt = path.suffix.lower().lstrip(".") or "file"
        if lowered.endswith((".gz", ".bz2", ".xz")):
            fmt = lowered.rsplit(".", 2)[-2] + "." + fmt
        art = Artifact(file=name, kind=kind, format=fmt)
        if name in skip:
            art.error = "not opened: the pickle scan refused it (see unsafe-pickle / unreadable-file)"
            out.append(art)
            continue
        if kind == "training_args":
            art.details["note"] = "scanned, not loaded"
            out.append(art)
            continue
        try:
            _read_artifact(path, art)
        except (
            OSError,
            ValueError,
            UnicodeDecodeError,
            EOFError,
            TypeError,
            AttributeError,
            IndexError,
            KeyError,
            RecursionError,
            MemoryError,
            ImportError,
        ) as exc:
            art.error = f"cannot be read: {type(exc).__name__}: {str(exc)[:120]}"
        except Exception as exc:  # third-party readers (pyarrow) raise their own types, csv.Error too
            art.error = f"cannot be read: {type(exc).__name__}: {str(exc)[:120]}"
        out.append(art)
    return out

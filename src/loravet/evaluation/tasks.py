"""Evaluation tasks: the rows, the prompt, the label. ACRC by default; a generic binary task beside it.

The ACRC prompt is one versioned default kept here and printed in the report; `--template` replaces it.
"""

from __future__ import annotations

import csv
import difflib
import random
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter
from typing import Any

from loravet.errors import EvaluationError

__all__ = ["ACRC_PROMPT", "ACRC_PROMPT_VERSION", "EvalTask", "load_task", "template_fields"]

ACRC_PROMPT_VERSION = "acrc-1"
ACRC_PROMPT = (
    "You are a moderator of the subreddit r/{subreddit}.\n"
    "Rule: {rule}\n"
    "Examples that violate the rule:\n- {positive_example_1}\n- {positive_example_2}\n"
    "Examples that do not violate the rule:\n- {negative_example_1}\n- {negative_example_2}\n"
    "Comment: {body}\n"
    "Does the comment violate the rule? Answer Yes or No."
)
ACRC_REQUIRED = ("row_id", "body", "rule")
ACRC_OPTIONAL = ("subreddit", "positive_example_1", "positive_example_2", "negative_example_1", "negative_example_2")
# what a too-long prompt gives up first: the comment and the examples, never the rule or the instruction
ACRC_TRUNCATABLE = ("body", "positive_example_1", "positive_example_2", "negative_example_1", "negative_example_2")
LABEL_GUESSES = ("label", "labels", "target", "y", "violation", "is_violation", "class")


@dataclass
class EvalTask:
    name: str  # "acrc" | "binary"
    rows: list[dict[str, str]]
    template: str
    prompt_version: str
    label_column: str | None
    text_column: str
    group_column: str | None  # "rule" for ACRC: AUC within each group
    id_column: str
    notes: list[str] = field(default_factory=list)
    truncatable: tuple[str, ...] = ()
    """Fields a prompt over --max-length gives up tokens from (the rest of the prompt is kept whole)."""

    @property
    def labels(self) -> list[int] | None:
        if self.label_column is None:
            return None
        return [int(float(r[self.label_column])) for r in self.rows]

    def prompt(self, row: dict[str, str]) -> str:
        return self.template.format_map(_Blank(row))


def template_fields(template: str) -> list[str]:
    """The {column} fields of a prompt template, or one clear error for what str.format would reject."""
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise EvaluationError(f"--template: {exc} (write a literal brace as {{{{ or }}}})") from None
    fields: list[str] = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise EvaluationError(
                "--template: a field must name a column, like {body}; write a literal brace as {{ or }}"
            )
        if any(c in name for c in ".[]"):
            raise EvaluationError(
                f"--template: field {{{name}}} must be a plain column name (no . or [ ]); "
                "write a literal brace as {{ or }}"
            )
        if name not in fields:
            fields.append(name)
    return fields


def _closest(name: str, columns: list[str]) -> str | None:
    lower = {c.lower(): c for c in columns}
    if name.lower() in lower:
        return lower[name.lower()]
    found = difflib.get_close_matches(name, columns, n=1, cutoff=0.75)
    return found[0] if found else None


def _did_you_mean(name: str, columns: list[str]) -> str:
    close = _closest(name, columns)
    return f" (closest column: {close})" if close else ""


def _columns_text(columns: list[str]) -> str:
    shown = ", ".join(columns[:20]) + (f", ... ({len(columns)} in all)" if len(columns) > 20 else "")
    return f"the file's columns: {shown}"


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def _read_csv(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            csv.field_size_limit(16 * 1024 * 1024)
            reader = csv.DictReader(fh)
            rows = [dict(r) for r in reader]
            return rows, list(reader.fieldnames or [])
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EvaluationError(f"{path}: not a readable CSV ({exc})") from None


def _stratified(rows: list[dict[str, str]], keys: list[str], limit: int, seed: int) -> list[dict[str, str]]:
    """A deterministic sample of `limit` rows keeping the mix of (group, label) cells."""
    if limit >= len(rows):
        return rows
    cells: dict[tuple[str, ...], list[int]] = {}
    for i, r in enumerate(rows):
        cells.setdefault(tuple(r.get(k, "") for k in keys), []).append(i)
    rng = random.Random(seed)
    for idx in cells.values():
        rng.shuffle(idx)
    picked: list[int] = []
    order = sorted(cells)
    while len(picked) < limit:
        progressed = False
        for key in order:
            if cells[key] and len(picked) < limit:
                picked.append(cells[key].pop())
                progressed = True
        if not progressed:
            break
    return [rows[i] for i in sorted(picked)]


def load_task(
    path: str,
    task: str = "acrc",
    template: str | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> EvalTask:
    """Read and validate the data and the template: every check here runs before any model is loaded."""
    fields = template_fields(template) if template is not None else None
    rows, columns = _read_csv(Path(path))
    if not rows:
        raise EvaluationError(f"{path}: no rows")
    _check_named_columns(path, columns, fields, label_column, text_column)
    if task == "acrc":
        t = _acrc_task(path, rows, columns, template, fields, label_column, text_column)
    elif task == "binary":
        t = _binary_task(rows, columns, template, fields, label_column, text_column)
    else:
        raise EvaluationError(f"unknown task {task!r} (acrc, binary)")
    try:
        t.prompt(rows[0])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise EvaluationError(f"--template: cannot fill it from the first row: {exc}") from None
    if t.label_column is not None:
        bad = [r[t.label_column] for r in rows if r.get(t.label_column, "").strip() not in ("0", "1", "0.0", "1.0")]
        if bad:
            raise EvaluationError(f"{path}: label column {t.label_column} must hold 0/1, found {bad[0]!r}")
    if limit is not None and limit > 0:
        keys = [k for k in (t.group_column, t.label_column) if k]
        t.rows = _stratified(rows, keys, limit, seed)
        if len(t.rows) < len(rows):
            t.notes.append(f"--limit {limit}: stratified sample of {len(t.rows)} of {len(rows)} rows")
    return t


def _check_named_columns(
    path: str, columns: list[str], fields: list[str] | None, label_column: str | None, text_column: str | None
) -> None:
    """Every column the options and the template name is in the file (else an error with the closest names)."""
    if label_column is not None and label_column not in columns:
        raise EvaluationError(
            f"{path}: no label column {label_column!r}{_did_you_mean(label_column, columns)}; " + _columns_text(columns)
        )
    if text_column is not None and text_column not in columns:
        raise EvaluationError(
            f"{path}: no text column {text_column!r}{_did_you_mean(text_column, columns)}; " + _columns_text(columns)
        )
    if fields is not None:
        missing = [f for f in fields if f not in columns]
        if missing:
            brace = (
                "; if a {...} is meant as text, write a literal brace as {{ or }}"
                if any(not _closest(f, columns) for f in missing)
                else ""
            )
            raise EvaluationError(
                f"{path}: the template names columns the file lacks: "
                + ", ".join(f + _did_you_mean(f, columns) for f in missing)
                + brace
                + "; "
                + _columns_text(columns)
            )


def _acrc_task(
    path: str,
    rows: list[dict[str, str]],
    columns: list[str],
    template: str | None,
    fields: list[str] | None,
    label_column: str | None,
    text_column: str | None,
) -> EvalTask:
    """The ACRC task: its schema, its label (or a note that there is none), its prompt and what may be cut."""
    missing = [c for c in ACRC_REQUIRED if c not in columns]
    if missing:
        raise EvaluationError(
            f"{path}: not in the ACRC schema (missing "
            + ", ".join(m + _did_you_mean(m, columns) for m in missing)
            + "); use --task binary --template ... "
            "--label-column ..."
        )
    notes: list[str] = []
    label = label_column or ("rule_violation" if "rule_violation" in columns else None)
    if label is None:
        guess = next((c for c in columns if c.lower() in LABEL_GUESSES), None) or _closest("rule_violation", columns)
        hint = f"; if {guess} holds the 0/1 labels, pass --label-column {guess}" if guess else ""
        notes.append(
            f"no label column: rule_violation is absent, so no AUC is computed ({_columns_text(columns)})" + hint
        )
    tmpl = template or ACRC_PROMPT
    version = ACRC_PROMPT_VERSION if template is None else "custom"
    if template is None:
        _acrc_optional_columns(path, columns, notes)
    used = fields if fields is not None else [c for c in ACRC_TRUNCATABLE]
    truncatable = tuple(c for c in ACRC_TRUNCATABLE if c in used)
    return EvalTask("acrc", rows, tmpl, version, label, text_column or "body", "rule", "row_id", notes, truncatable)


def _acrc_optional_columns(path: str, columns: list[str], notes: list[str]) -> None:
    """The built-in prompt's optional columns: absent ones are left empty (noted), unless a column of a close
    name suggests a misspelling (an error)."""
    for c in ACRC_OPTIONAL:
        if c in columns:
            continue
        close = _closest(c, [x for x in columns if x not in ACRC_OPTIONAL])
        if close:
            raise EvaluationError(
                f"{path}: the prompt needs column {c}, which is absent; the file has "
                f"{close}: rename it to {c} (or pass --template)"
            )
        notes.append(f"column {c} is absent: left empty in every prompt")


def _binary_task(
    rows: list[dict[str, str]],
    columns: list[str],
    template: str | None,
    fields: list[str] | None,
    label_column: str | None,
    text_column: str | None,
) -> EvalTask:
    """A binary task from a template; rows get a row_id (their index) when the file has no id column."""
    if not template or fields is None:
        raise EvaluationError("--task binary needs --template with {column} fields")
    text = text_column or next((c for c in ("body", "text") if c in columns), fields[0] if fields else columns[0])
    id_col = "row_id" if "row_id" in columns else "id" if "id" in columns else ""
    if not id_col:
        for i, r in enumerate(rows):
            r["row_id"] = str(i)
        id_col = "row_id"
    notes: list[str] = []
    if label_column is None:
        notes.append("no --label-column: no AUC is computed")
    truncatable = (text,) if text in fields else ()
    return EvalTask("binary", rows, template, "custom", label_column, text, None, id_col, notes, truncatable)

"""Prompts measured against --max-length before the model loads.

A prompt over the limit gives up tokens from its long free-text fields only (the comment body and the
examples for ACRC), the longest first, until it fits: the rule, the subreddit, the instruction and the chat
template's header and answer cue are never cut. A row that cannot fit even with those fields emptied is an
error, said before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loravet.errors import EvaluationError
from loravet.evaluation.tasks import EvalTask

__all__ = ["build_inputs"]


def _cap(lengths: list[int], excess: int) -> int:
    """The largest per-field token cap that removes at least `excess` tokens (longest fields cut first)."""
    lo, hi = 0, max(lengths)
    while lo < hi:  # largest c with sum(max(0, L - c)) >= excess
        mid = (lo + hi + 1) // 2
        if sum(max(0, n - mid) for n in lengths) >= excess:
            lo = mid
        else:
            hi = mid - 1
    return lo


def build_inputs(task: EvalTask, encode: Callable[[str], list[int]], tokenizer: Any,
                 max_length: int) -> tuple[list[list[int]], list[str]]:
    """Token ids per row (input order) and the notes to show (rows truncated, longest prompt)."""
    inputs: list[list[int]] = []
    truncated: list[str] = []
    longest = 0
    for row in task.rows:
        ids = encode(task.prompt(row))
        longest = max(longest, len(ids))
        if len(ids) > max_length:
            ids = _shorten(task, row, ids, encode, tokenizer, max_length)
            truncated.append(str(row.get(task.id_column, "")))
        inputs.append(ids)
    notes: list[str] = []
    if truncated:
        fields = ", ".join(task.truncatable)
        shown = ", ".join(truncated[:5]) + (", ..." if len(truncated) > 5 else "")
        notes.append(f"--max-length {max_length}: {len(truncated)} of {len(task.rows)} prompts were over it "
                     f"(longest {longest} tokens) and had their {fields} shortened to fit, the rest of the prompt "
                     f"kept whole (rows {shown})")
    return inputs, notes


def _shorten(task: EvalTask, row: dict[str, str], ids: list[int], encode: Callable[[str], list[int]],
             tokenizer: Any, max_length: int) -> list[int]:
    row_id = row.get(task.id_column, "?")
    fields = [f for f in task.truncatable if row.get(f)]
    pieces = {f: list(tokenizer.encode(row[f], add_special_tokens=False)) for f in fields}
    lengths = [len(pieces[f]) for f in fields]
    fixed = len(encode(task.prompt({**row, **{f: "" for f in fields}})))
    if fixed > max_length:
        raise EvaluationError(f"row {row_id}: the prompt without its {', '.join(task.truncatable) or 'text'} is "
                              f"already {fixed} tokens, over --max-length {max_length}: raise --max-length "
                              "(the rule and the instruction are never cut)")
    excess = len(ids) - max_length
    for _ in range(8):  # token counts are not exactly additive across field boundaries: re-measure
        cap = _cap(lengths, min(excess, sum(lengths)))
        short = {f: tokenizer.decode(pieces[f][:cap]) if len(pieces[f]) > cap else row[f] for f in fields}
        out = encode(task.prompt({**row, **short}))
        if len(out) <= max_length:
            return out
        excess += len(out) - max_length
    raise EvaluationError(f"row {row_id}: cannot shorten the prompt under --max-length {max_length}")

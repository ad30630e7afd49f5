"""Side-by-side comparison: one row per aspect, a winner per row with its reason, and the adapter to
depend on.

The overall choice follows one written rule (the README and docs/contract.md state it too):

1. never an adapter whose load outcome is ``fails`` or ``inert``, that carries an unsafe pickle, or
   whose predictions are degenerate, while a usable one exists;
2. ``loads`` ranks above ``partial``, which ranks above ``unknown``;
3. then the evaluation score (rule-mean AUC, else AUC) when there is one;
4. then training evidence and fit: fewer high/critical findings, training artifacts present, names and
   tensors consistent with the base;
5. then argument order.

Raw capacity (rank, alpha, dropout, number of target modules) never decides: those rows have no winner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loravet.findings import Severity
from loravet.results import AdapterReport, Cell, Comparison, ComparisonRow, Evaluation, Report

__all__ = ["build_comparison", "preferred_adapter"]

_OUTCOME_RANK = {"loads": 3, "partial": 2, "unknown": 1, "inert": 0, "fails": 0}
_ATTN = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "qkv_proj",
    "c_attn",
    "query_key_value",
    "query",
    "key",
    "value",
    "dense",
    "q_lin",
    "k_lin",
    "v_lin",
    "out_lin",
    "attn.c_proj",
)
_MLP = (
    "gate_proj",
    "up_proj",
    "down_proj",
    "gate_up_proj",
    "c_fc",
    "mlp.c_proj",
    "dense_h_to_4h",
    "dense_4h_to_h",
    "fc1",
    "fc2",
    "lin1",
    "lin2",
    "w1",
    "w2",
    "w3",
)
_EMB = ("embed_tokens", "lm_head", "wte", "embed_in", "word_embeddings")


def _unsafe(a: AdapterReport) -> bool:
    return a.finding("unsafe-pickle") is not None


def _usable(a: AdapterReport) -> bool:
    return a.load_outcome not in ("fails", "inert") and not _unsafe(a) and a.finding("degenerate-predictions") is None


def _why_unusable(a: AdapterReport) -> str:
    if _unsafe(a):
        return "unsafe pickle"
    if a.load_outcome in ("fails", "inert"):
        return a.load_outcome
    return "degenerate predictions"


def _score(a: AdapterReport, evaluation: Evaluation | None) -> float | None:
    if evaluation is None:
        return None
    s = evaluation.scores.get(a.name)
    if s is None:
        return None
    v = s.value
    return float(v) if v is not None else None


def _serious(a: AdapterReport) -> int:
    return sum(1 for f in a.findings if f.severity >= Severity.HIGH)


def _has_evidence(a: AdapterReport) -> bool:
    return bool(a.training_evidence)


def _fit_ok(a: AdapterReport) -> bool:
    return not any(a.finding(c) for c in ("architecture-mismatch", "base-name-conflict", "shape-mismatch"))


def preferred_adapter(adapters: list[AdapterReport], evaluation: Evaluation | None) -> tuple[AdapterReport | None, str]:
    usable = [a for a in adapters if _usable(a)]
    if not usable:
        return None, "no adapter is usable: each fails, is inert, carries an unsafe pickle, or predicts degenerately"

    def key(item: tuple[int, AdapterReport]) -> tuple[Any, ...]:
        i, a = item
        score = _score(a, evaluation)
        return (
            -_OUTCOME_RANK[a.load_outcome],
            -(score if score is not None else -1.0),
            _serious(a),
            0 if _has_evidence(a) else 1,
            0 if _fit_ok(a) else 1,
            i,
        )

    best = min(enumerate(usable), key=key)[1]
    parts = [f"load outcome {best.load_outcome}"]
    score = _score(best, evaluation)
    if score is not None:
        parts.append(f"evaluation score {score:.4f}")
    parts.append(f"{_serious(best)} high/critical finding(s)")
    if _has_evidence(best):
        parts.append("training evidence present")
    rejected = [a for a in adapters if a is not best and not _usable(a)]
    reason = f"{best.name}: " + ", ".join(parts)
    if rejected:
        reason += "; not usable: " + ", ".join(f"{a.name} ({_why_unusable(a)})" for a in rejected)
    if best.kfold is not None:
        fold_mates = [
            a.name
            for a in adapters
            if a.kfold is not None and a is not best and _usable(a) and a.kfold.get("fold") != best.kfold.get("fold")
        ]
        n = len(best.kfold.get("siblings", [])) + 1
        reason += (
            f". It is fold {best.kfold['fold']} of a {n}-fold set: prefer the ensemble of the folds "
            f"(mean probability{' over ' + ', '.join([best.name, *fold_mates]) if fold_mates else ''}) "
            "over any single fold"
        )
    return best, reason


def _coverage(target: Any) -> str:
    if target is None:
        return "PEFT default"
    if isinstance(target, str):
        return "all linear layers" if target.lower() == "all-linear" else f"regex {target}"
    if not isinstance(target, list | tuple):
        return f"not a list or a string: {target!r}"[:80]
    names = [str(t) for t in target]
    att = [n for n in names if n.endswith(_ATTN)]
    mlp = [n for n in names if n.endswith(_MLP)]
    emb = [n for n in names if n.endswith(_EMB)]
    parts = []
    if att:
        parts.append(f"attention {len(att)}")
    if mlp:
        parts.append(f"MLP {len(mlp)}")
    if emb:
        parts.append(f"embeddings {len(emb)}")
    return ", ".join(parts) or "other"


def _best_of(
    adapters: list[AdapterReport],
    good: dict[str, bool],
    reason_good: str,
    reason_tie: str,
    preferred: str | None = None,
) -> tuple[str | None, str]:
    """The winner of a row: the overall preferred adapter when it is among the good ones, else the first good one
    that is usable. An unusable adapter (fails, inert, unsafe pickle, degenerate predictions) never wins a row."""
    good_names = [a.name for a in adapters if good[a.name]]
    if not good_names or len(good_names) == len(adapters):
        return None, reason_tie
    winners = [a.name for a in adapters if good[a.name] and _usable(a)]
    if not winners:
        return None, f"only unusable adapters qualify ({reason_good})"
    if preferred in winners:
        winners.remove(preferred)  # type: ignore[arg-type]
        winners.insert(0, preferred)  # type: ignore[arg-type]
    extra = f" ({len(good_names)} of {len(adapters)} adapters do)" if len(good_names) > 1 else ""
    return winners[0], reason_good + extra


class _Rows:
    """The comparison's rows, built in order: each row's values per adapter, and its winner when one is
    better (the overall preferred adapter first among the good ones)."""

    def __init__(self, adapters: list[AdapterReport], preferred: str | None) -> None:
        self.adapters, self.preferred = adapters, preferred
        self.rows: list[ComparisonRow] = []

    def values(self, fn: Callable[[AdapterReport], Cell]) -> dict[str, Cell]:
        return {a.name: fn(a) for a in self.adapters}

    def add(self, key: str, aspect: str, values: dict[str, Cell], winner: str | None, reason: str) -> None:
        self.rows.append(ComparisonRow(key, aspect, values, winner, reason))

    def judged(
        self, key: str, aspect: str, values: dict[str, Cell], good: dict[str, bool], reason_good: str, reason_tie: str
    ) -> None:
        winner, reason = _best_of(self.adapters, good, reason_good, reason_tie, preferred=self.preferred)
        self.add(key, aspect, values, winner, reason)


def build_comparison(report: Report) -> Comparison:
    adapters = report.adapters
    best, best_reason = preferred_adapter(adapters, report.evaluation)
    rows = _Rows(adapters, best.name if best else None)
    _base_rows(rows)
    _capacity_rows(rows)
    _file_rows(rows)
    _provenance_rows(rows)
    _verdict_rows(rows, report.evaluation)
    return Comparison(rows.rows, rows.preferred, best_reason, [a.name for a in adapters])


def _variant(a: AdapterReport) -> str:
    base = a.base_model_name_or_path or "-"
    q = (a.base or {}).get("quantization")
    hint = a.base_variant_hint
    text = f"{base} ({q or 'no quantization named'})"
    if hint and not q:
        text += f"; {hint.where} suggests {hint.text}"
    return text


def _base_rows(rows: _Rows) -> None:
    """Which base: as named, as traced from the tensors, and whether the load works on it."""
    adapters = rows.adapters
    rows.add(
        "named_base",
        "Named base (variant)",
        rows.values(_variant),
        None,
        "depends: the variant must match the base you load; a GPTQ/AWQ base gives LoRA tensors the "
        "same shapes as the fp16 base, so the name alone proves nothing",
    )
    traced = rows.values(lambda a: (a.architecture or {}).get("best_match"))
    consistent = {a.name: a.finding("architecture-mismatch") is None and traced[a.name] is not None for a in adapters}
    rows.judged(
        "traced_base",
        "Base traced from the tensors",
        traced,
        consistent,
        "its tensor shapes fit the base it names",
        "every adapter's shapes fit its named base"
        if all(consistent.values())
        else "no adapter's shapes could be traced to its base",
    )
    outcome = {a.name: a.load_outcome for a in adapters}
    best_rank = max(_OUTCOME_RANK[o] for o in outcome.values())
    rows.judged(
        "load_outcome",
        "Load outcome on the base",
        dict(outcome),
        {n: _OUTCOME_RANK[o] == best_rank and o in ("loads", "partial") for n, o in outcome.items()},
        "loads on its base (loads > partial > unknown; fails/inert never win)",
        "same load outcome for all",
    )


def _capacity_rows(rows: _Rows) -> None:
    """Raw capacity: shown, never judged."""
    rows.add(
        "rank",
        "LoRA rank (r)",
        rows.values(lambda a: a.r),
        None,
        "depends: more rank is more capacity and more overfitting risk, not evidence of quality",
    )
    rows.add("alpha", "LoRA alpha", rows.values(lambda a: a.lora_alpha), None, "depends: read with the rank")
    scal = rows.values(lambda a: a.scaling)
    uniq = {v for v in scal.values() if v is not None}
    rows.add(
        "scaling",
        "Effective scaling (alpha/r, alpha/sqrt(r) with rsLoRA)",
        scal,
        None,
        "tie: same scaling" if len(uniq) == 1 else "depends: a larger scaling amplifies the update",
    )
    rows.add(
        "target_modules",
        "Target modules (coverage)",
        rows.values(lambda a: f"{_coverage(a.target_modules)}: {a.target_modules}"),
        None,
        "depends: wider coverage is more capacity, not evidence of quality",
    )
    rows.add(
        "dropout",
        "LoRA dropout",
        rows.values(lambda a: a.lora_dropout),
        None,
        "depends: a training-time regulariser; it does not change inference",
    )
    rows.add(
        "trainable_params",
        "Trainable parameters (exact, from the file)",
        rows.values(lambda a: a.trainable_params),
        None,
        "depends: counted, not judged",
    )


def _size(a: AdapterReport) -> str:
    if not a.weights:
        return "no weight file"
    bytes_ = a.weights["bytes"]
    ok = a.finding("size-implausible") is None
    return f"{bytes_ / 1e6:.2f} MB ({'as its tensors imply' if ok else 'NOT what its tensors imply'})"


def _file_rows(rows: _Rows) -> None:
    """The weight file: its size against what its tensors imply, its dtype."""
    adapters = rows.adapters
    rows.judged(
        "file_size",
        "File size vs expected",
        rows.values(_size),
        {a.name: bool(a.weights) and a.finding("size-implausible") is None for a in adapters},
        "its file size is exactly what its tensors imply",
        "every file size matches its tensors"
        if all(a.weights and a.finding("size-implausible") is None for a in adapters)
        else "no file size could be checked",
    )
    rows.add(
        "dtype",
        "Weight dtype",
        rows.values(lambda a: "/".join((a.weights or {}).get("dtypes", [])) or None),
        None,
        "depends: storage precision only",
    )


def _evidence(a: AdapterReport) -> str:
    ev_files = a.training_evidence or []
    if not ev_files:
        return "none"
    rows_by = [f"{x['file']} ({x['rows']} rows)" for x in a.artifacts if x.get("rows") is not None]
    return ", ".join(rows_by or ev_files)


def _kfold(a: AdapterReport) -> str:
    if not a.kfold:
        return "single adapter"
    sizes = [
        f"{x['kind']} {x['rows']}"
        for x in a.artifacts
        if x.get("kind") in ("train", "val") and x.get("rows") is not None
    ]
    return f"fold {a.kfold['fold']} of {len(a.kfold['siblings']) + 1}" + (f" ({', '.join(sizes)})" if sizes else "")


def _naming(a: AdapterReport) -> str:
    conflict = a.finding("base-name-conflict")
    return "conflict: " + conflict.message if conflict else "consistent"


def _provenance_rows(rows: _Rows) -> None:
    """Where the adapter comes from: training evidence, k-fold set, names that agree."""
    adapters = rows.adapters
    rows.judged(
        "training_evidence",
        "Training evidence",
        rows.values(_evidence),
        {a.name: _has_evidence(a) for a in adapters},
        "publishes training artifacts (splits, trainer state)",
        "same training evidence for all",
    )
    rows.judged(
        "kfold",
        "k-fold membership and split sizes",
        rows.values(_kfold),
        # fold-unvalidated was a low-severity fold-overlap: it still counts against the set
        {
            a.name: a.kfold is not None and a.finding("fold-overlap") is None and a.finding("fold-unvalidated") is None
            for a in adapters
        },
        "part of a clean k-fold set: an ensemble is available",
        "same k-fold status for all",
    )
    naming = rows.values(_naming)
    rows.judged(
        "naming",
        "Naming consistency",
        naming,
        {n: v == "consistent" for n, v in naming.items()},
        "names, card and config agree about the base",
        "same naming status for all",
    )


def _serving(a: AdapterReport) -> str:
    parts = [
        f.message
        for f in a.findings
        if f.code in ("vllm-incompatible", "vllm-settings", "merge-refused", "merge-lossy")
    ]
    return "; ".join(parts) or "vLLM defaults; mergeable"


def _verdict_rows(rows: _Rows, ev: Evaluation | None) -> None:
    """Security, serving, the findings' count and, with an evaluation, the behaviour on the data."""
    adapters = rows.adapters
    security = rows.values(lambda a: "UNSAFE pickle" if _unsafe(a) else "no unsafe pickle")
    rows.judged(
        "security",
        "Security (pickles)",
        security,
        {n: v == "no unsafe pickle" for n, v in security.items()},
        "nothing in it imports code outside the allow-list",
        "same security status for all",
    )
    rows.judged(
        "serving",
        "Serving (vLLM, merge)",
        rows.values(_serving),
        {a.name: not (a.finding("vllm-incompatible") or a.finding("merge-refused")) for a in adapters},
        "served by vLLM and mergeable into its base",
        "same serving status for all",
    )
    findings = rows.values(lambda a: f"{_serious(a)} high/critical of {len(a.findings)}")
    least = min(_serious(a) for a in adapters)
    rows.judged(
        "findings",
        "Findings",
        findings,
        {a.name: _serious(a) == least for a in adapters},
        "fewest high/critical findings",
        "same number of high/critical findings",
    )
    if ev is not None:
        scores: dict[str, Cell] = {a.name: _score(a, ev) for a in adapters}
        avail = {
            n: s
            for n, s in scores.items()
            if isinstance(s, float) and _usable(next(a for a in adapters if a.name == n))
        }
        w = max(avail, key=lambda n: avail[n]) if len(avail) > 1 or (avail and len(adapters) == 1) else None
        rows.add(
            "behaviour",
            f"Behaviour on the data ({ev.metric})",
            scores,
            w,
            "highest score among usable adapters" if w else "not enough scored adapters",
        )

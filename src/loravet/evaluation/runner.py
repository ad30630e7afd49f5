"""`loravet eval`: static check first, then the base loaded once, every usable adapter attached to it,
the bare base scored as the control; metrics, ensembles, findings, predictions and submission files."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loravet.context import CheckOptions
from loravet.errors import EvaluationError
from loravet.evaluation import metrics
from loravet.evaluation.backend import TransformersBackend
from loravet.evaluation.outputs import check_writable
from loravet.evaluation.progress import Progress
from loravet.evaluation.prompts import build_inputs
from loravet.evaluation.tasks import EvalTask, load_task
from loravet.findings import make_finding
from loravet.pipeline import run_checks
from loravet.reports.sanitize import csv_cell
from loravet.results import AdapterReport, Evaluation, Report, ScoreBlock, Submission, Timing

__all__ = ["evaluate", "resolve_base_weights"]

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def resolve_base_weights(spec: str) -> Path:
    """A local model folder with weights, or a hub id whose snapshot (with weights) is in the cache."""
    text = spec[3:] if spec.startswith("hf:") else spec
    revision = None
    if "@" in text and spec.startswith("hf:"):
        text, revision = text.split("@", 1)
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "config.json").exists() and any((path / f).exists() for f in _WEIGHT_FILES):
            return path
        raise EvaluationError(f"{spec}: the folder has no config.json with model weights; eval needs real weights")
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(text, revision=revision, local_files_only=True))
    except Exception:
        raise EvaluationError(
            f"{spec}: eval needs the base's weights, and they are not in the local "
            "huggingface_hub cache (download them first, or pass a local folder)"
        ) from None
    if not any((folder / f).exists() for f in _WEIGHT_FILES):
        raise EvaluationError(f"{spec}: the cached snapshot has no model weights")
    return folder


def _adapter_kind(report: AdapterReport) -> str:
    return "seq_cls" if (report.task_type or "").upper() == "SEQ_CLS" else "causal"


def _positive_index(positive_label: str | None) -> int:
    if positive_label is None:
        return 1
    try:
        return int(positive_label)
    except ValueError:
        raise EvaluationError("--positive-label must be a label index (e.g. 1)") from None


def _write_predictions(path: str, task: EvalTask, columns: dict[str, np.ndarray]) -> None:
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["row_id", *(csv_cell(name) for name in columns)])  # adapter names are theirs
            for i, row in enumerate(task.rows):
                w.writerow([csv_cell(row[task.id_column]), *(f"{float(v[i]):.8f}" for v in columns.values())])
    except OSError as exc:
        raise EvaluationError(f"cannot write {path}: {exc.strerror or exc}") from None


def _frame(task: EvalTask, columns: dict[str, np.ndarray]) -> Any:
    """Per-row scores in input order: row_id, the group (rule) and label when there are, then one column per
    scored model. A pandas DataFrame when pandas is installed, else a dict of lists."""
    data: dict[str, Any] = {"row_id": [r[task.id_column] for r in task.rows]}
    if task.group_column:
        data[task.group_column] = [r[task.group_column] for r in task.rows]
    if task.labels is not None:
        data[task.label_column or "label"] = task.labels
    for name, values in columns.items():
        data[name] = [float(v) for v in values]
    try:
        import pandas as pd
    except ImportError:
        return data
    return pd.DataFrame(data)


def _score_block(task: EvalTask, scores: np.ndarray, members: list[str] | None = None) -> ScoreBlock:
    labels = task.labels
    if labels is None:
        return ScoreBlock(auc=None, rule_mean_auc=None, labelled=False, members=members)
    auc = metrics.auc(labels, scores)
    if task.group_column:
        groups = [r[task.group_column] for r in task.rows]
        mean, per, skipped = metrics.rule_mean_auc(labels, scores, groups)
        ci = metrics.bootstrap_ci(labels, scores, groups)
        return ScoreBlock(
            auc=_round(auc),
            rule_mean_auc=_round(mean),
            per_rule=per,
            rules_skipped=skipped,
            ci95=list(ci) if ci else None,
            members=members,
        )
    ci = metrics.bootstrap_ci(labels, scores, None)
    return ScoreBlock(auc=_round(auc), rule_mean_auc=None, ci95=list(ci) if ci else None, members=members)


def _round(value: float | None) -> float | None:
    return round(value, 6) if isinstance(value, float) else value


def evaluate(
    adapters: str | Sequence[str],
    base: str | None = None,
    data: str | None = None,
    *,
    task: str = "acrc",
    template: str | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    max_length: int = 1024,
    device: str = "auto",
    positive_label: str | None = None,
    predictions: str | None = None,
    submission: str | None = None,
    progress: bool = True,
) -> Report:
    """Score adapters (and the bare base, as the control) on a labelled or unlabelled CSV.

    Runs the static check first, then everything cheap (output paths, columns, template, prompt lengths) before
    the model is loaded. Returns the Report with `evaluation` (metrics, ensembles, notes, as in the JSON) and
    `predictions`: the per-row scores in input order (a pandas DataFrame when pandas is installed, else a dict
    of columns) with `base`, one column per scored adapter, and `ensemble` / `ensemble_rank`.

        >>> report = loravet.evaluate(["./fold0", "./fold1"], base="./SmolLM2-135M-Instruct", data="train.csv")
        >>> report.predictions.head()
    """
    if data is None:
        raise EvaluationError("evaluate needs data= (a CSV to score)")
    specs = [adapters] if isinstance(adapters, str) else list(adapters)
    check_writable(predictions, "--predictions")
    check_writable(submission, "--submission")
    if batch_size < 1:
        raise EvaluationError("batch_size must be at least 1")
    eval_task = load_task(data, task, template, label_column, text_column, limit)
    pos = _positive_index(positive_label)
    options = CheckOptions(
        base_spec=base,
        task_head=True,
        replay=True,  # eval imports torch anyway: replay
        eval_data=data,
        eval_text_column=eval_task.text_column,
    )
    with run_checks(specs, options, "eval") as run:
        report = run.report
        base_spec = base or next(
            (a.base_model_name_or_path for a in report.adapters if a.base_model_name_or_path), None
        )
        if not base_spec:
            raise EvaluationError("eval needs --base (the adapters name no base)")
        base_path = resolve_base_weights(base_spec)
        return _run(
            report, base_path, eval_task, batch_size, max_length, device, pos, predictions, submission, progress
        )


_Item = tuple[str, Path, str, int]
"""an adapter to attach: name, folder, kind (causal / seq_cls), positive label index"""


@dataclass
class _Scored:
    """The base loaded once, the adapters attached to it, and every model's score per row."""

    backend: TransformersBackend
    inputs: list[list[int]]
    length_notes: list[str]
    attached: list[_Item]
    scores: dict[str, np.ndarray]
    load_seconds: float
    score_seconds: float


def _run(
    report: Report,
    base_path: Path,
    task: EvalTask,
    batch_size: int,
    max_length: int,
    device: str,
    pos: int,
    predictions: str | None,
    submission: str | None,
    progress: bool,
) -> Report:
    skipped, to_load = _loadable(report, pos)
    backend = TransformersBackend(base_path, device=device, batch_size=batch_size, max_length=max_length)
    run = _score(backend, task, max_length, to_load, skipped, progress)
    degenerate = _degenerate(report, run)
    members = [n for n, *_ in run.attached if n not in degenerate]
    groups = [r[task.group_column] for r in task.rows] if task.group_column else None
    columns: dict[str, np.ndarray] = dict(run.scores)
    evaluation = _evaluation(task, run, skipped, degenerate, max_length)
    if len(run.attached) > 1 and members:
        _add_ensembles(task, run.scores, members, groups, columns, evaluation.scores)
    evaluation.agreement = metrics.rank_correlation(run.scores)
    evaluation.histograms = {n: metrics.histogram(s) for n, s in columns.items() if n != "ensemble_rank"}
    if task.labels is not None and groups is not None:
        evaluation.roc = _roc(task.labels, groups, columns)
    report.predictions = _frame(task, columns)
    if predictions:
        _write_predictions(predictions, task, columns)
        evaluation.predictions_file = predictions
    if submission:
        source = (
            "ensemble"
            if "ensemble" in columns
            else (members[0] if members else (run.attached[0][0] if run.attached else "base"))
        )
        _write_submission(submission, task, columns[source])
        evaluation.submission = Submission(file=submission, source=source)
    report.evaluation = evaluation
    return report


def _loadable(report: Report, pos: int) -> tuple[dict[str, str], list[_Item]]:
    """Adapters not to load (with why: an unsafe pickle, or PEFT would raise) and the ones to attach."""
    skipped: dict[str, str] = {}
    to_load: list[_Item] = []
    for a in report.adapters:
        if a.finding("unsafe-pickle"):
            skipped[a.name] = "carries an unsafe pickle: not loaded"
        elif a.load_outcome == "fails":
            skipped[a.name] = "PEFT would raise on it (load outcome fails): not loaded"
        else:
            to_load.append((a.name, Path(a.path), _adapter_kind(a), pos))
    return skipped, to_load


def _score(
    backend: TransformersBackend,
    task: EvalTask,
    max_length: int,
    to_load: list[_Item],
    skipped: dict[str, str],
    progress: bool,
) -> _Scored:
    """Prompts measured, the base loaded, each adapter attached (one PEFT raises on is skipped, with why), and
    the base and every attached adapter scored on every row."""
    backend.load_tokenizer()
    inputs, length_notes = build_inputs(task, backend.encode, backend.tokenizer, max_length)
    started = time.perf_counter()
    backend.load()
    attached: list[_Item] = []
    for item in to_load:
        try:
            backend.attach([item])
            attached.append(item)
        except Exception as exc:  # PEFT raised after all: that is the finding
            skipped[item[0]] = f"PEFT raised while loading it: {type(exc).__name__}: {str(exc)[:160]}"
    load_seconds = time.perf_counter() - started
    scores: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    with Progress(progress) as bar:
        scores["base"] = backend.score(inputs, None, bar.task("base", len(inputs)))
        for name, *_ in attached:
            scores[name] = backend.score(inputs, name, bar.task(name, len(inputs)))
    return _Scored(backend, inputs, length_notes, attached, scores, load_seconds, time.perf_counter() - t0)


def _degenerate(report: Report, run: _Scored) -> dict[str, str]:
    """Attached adapters whose scores are degenerate (constant, NaN, the base's own), each with a finding."""
    by_name = {a.name: a for a in report.adapters}
    degenerate: dict[str, str] = {}
    for name, *_ in run.attached:
        reason = metrics.degenerate_reason(run.scores[name], run.scores["base"])
        if reason:
            degenerate[name] = reason
            s = run.scores[name]
            by_name[name].add(
                make_finding(
                    "degenerate-predictions",
                    f"{reason} over {len(s)} rows",
                    reason=reason,
                    mean=round(float(np.nanmean(s)), 6) if np.any(np.isfinite(s)) else None,
                    std=round(float(np.nanstd(s)), 8) if np.any(np.isfinite(s)) else None,
                )
            )
    return degenerate


def _evaluation(
    task: EvalTask, run: _Scored, skipped: dict[str, str], degenerate: dict[str, str], max_length: int
) -> Evaluation:
    backend, inputs = run.backend, run.inputs
    return Evaluation(
        metric="rule_mean_auc" if task.group_column else "auc",
        rows=len(task.rows),
        prompt_version=task.prompt_version,
        prompt=task.template,
        task=task.name,
        scores={n: _score_block(task, s) for n, s in run.scores.items()},
        skipped=skipped or None,
        notes=task.notes + backend.notes + run.length_notes or None,
        answer_tokens={k: backend.answers[k] for k in ("yes", "yes_strings", "no", "no_strings")},
        max_length=max_length,
        longest_prompt_tokens=max((len(x) for x in inputs), default=0),
        degenerate=degenerate or None,
        timing=Timing(
            load_s=round(run.load_seconds, 2),
            score_s=round(run.score_seconds, 2),
            rows_per_s=round(len(inputs) * len(run.scores) / max(run.score_seconds, 1e-9), 2),
        ),
        device=backend.device,
        dtype=backend.dtype,
        parameters_in_memory=backend.parameter_count(),
    )


def _add_ensembles(
    task: EvalTask,
    scores: dict[str, np.ndarray],
    members: list[str],
    groups: list[str] | None,
    columns: dict[str, np.ndarray],
    blocks: dict[str, ScoreBlock],
) -> None:
    """The mean of the members' scores, and (two or more members) their per-group rank average."""
    ens = metrics.ensemble_mean([scores[m] for m in members])
    columns["ensemble"] = ens
    blocks["ensemble"] = _score_block(task, ens, members)
    if len(members) > 1:
        rank = metrics.ensemble_rank([scores[m] for m in members], groups)
        columns["ensemble_rank"] = rank
        blocks["ensemble_rank"] = _score_block(task, rank, members)


def _roc(
    labels: list[int], groups: list[str], columns: dict[str, np.ndarray]
) -> dict[str, dict[str, list[list[float]]]]:
    """ROC points per group (the first six with both labels), per model with finite scores."""
    roc: dict[str, dict[str, list[list[float]]]] = {}
    for g in sorted(set(groups))[:6]:
        mask = np.asarray(groups) == g
        y = np.asarray(labels)[mask]
        if len(set(y.tolist())) < 2:
            continue
        roc[g] = {n: metrics.roc_points(y, s[mask]) for n, s in columns.items() if np.all(np.isfinite(s))}
    return roc


def _write_submission(path: str, task: EvalTask, values: np.ndarray) -> None:
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["row_id", "rule_violation"])
            for i, row in enumerate(task.rows):
                w.writerow([csv_cell(row[task.id_column]), f"{float(values[i]):.8f}"])
    except OSError as exc:
        raise EvaluationError(f"cannot write {path}: {exc.strerror or exc}") from None

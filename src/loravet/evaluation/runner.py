"""`loravet eval`: static check first, then the base loaded once, every usable adapter attached to it,
the bare base scored as the control; metrics, ensembles, findings, predictions and submission files."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loravet.api import run_static
from loravet.errors import EvaluationError
from loravet.evaluation import metrics
from loravet.evaluation.tasks import EvalTask, load_task
from loravet.findings import make_finding
from loravet.report import AdapterReport, Report

__all__ = ["evaluate", "resolve_base_weights"]

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


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
        raise EvaluationError(f"{spec}: eval needs the base's weights, and they are not in the local "
                              "huggingface_hub cache (download them first, or pass a local folder)") from None
    if not any((folder / f).exists() for f in _WEIGHT_FILES):
        raise EvaluationError(f"{spec}: the cached snapshot has no model weights")
    return folder


class _Progress:
    """A rich progress bar on stderr with rows/s; silent when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total
        self._progress: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[rate]} rows/s"), TimeRemainingColumn(),
                                      console=Console(file=sys.stderr), transient=True)
            self._progress.__enter__()
        return self

    def task(self, name: str, rows: int) -> Any:
        if not self._progress:
            return lambda n: None
        tid = self._progress.add_task(f"scoring {name}", total=rows, rate="-")
        start = time.perf_counter()
        done = [0]

        def advance(n: int) -> None:
            done[0] += n
            rate = done[0] / max(time.perf_counter() - start, 1e-9)
            self._progress.update(tid, advance=n, rate=f"{rate:.1f}")
        return advance

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.__exit__(None, None, None)


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
            w.writerow(["row_id", *columns])
            for i, row in enumerate(task.rows):
                w.writerow([row[task.id_column], *(f"{float(v[i]):.8f}" for v in columns.values())])
    except OSError as exc:
        raise EvaluationError(f"cannot write {path}: {exc.strerror or exc}") from None


def _score_block(task: EvalTask, scores: np.ndarray) -> dict[str, Any]:
    labels = task.labels
    if labels is None:
        return {"rule_mean_auc": None, "auc": None}
    groups = [r[task.group_column] for r in task.rows] if task.group_column else None
    out: dict[str, Any] = {"auc": metrics.auc(labels, scores)}
    if groups is not None:
        mean, per, skipped = metrics.rule_mean_auc(labels, scores, groups)
        out["rule_mean_auc"] = mean
        out["per_rule"] = per
        out["rules_skipped"] = skipped
        ci = metrics.bootstrap_ci(labels, scores, groups)
    else:
        out["rule_mean_auc"] = None
        ci = metrics.bootstrap_ci(labels, scores, None)
    out["ci95"] = list(ci) if ci else None
    for k in ("auc", "rule_mean_auc"):
        if isinstance(out.get(k), float):
            out[k] = round(out[k], 6)
    return out


def evaluate(adapters: Sequence[str], base: str | None, data: str, *, task: str = "acrc",
             template: str | None = None, label_column: str | None = None, text_column: str | None = None,
             batch_size: int = 8, limit: int | None = None, max_length: int = 1024, device: str = "auto",
             positive_label: str | None = None, predictions: str | None = None, submission: str | None = None,
             progress: bool = True) -> Report:
    """Static check, then scoring; returns the report with `evaluation` filled in."""
    eval_task = load_task(data, task, template, label_column, text_column, limit)
    report, details = run_static(list(adapters), base, resolve=True, command="eval", keep_details=True,
                                 task_head=True, replay=True)  # eval imports torch anyway: replay
    try:
        from loravet.checks.leakage import contamination_findings

        contamination_findings(report.adapters, details, data, eval_task.text_column)
        base_spec = base or next((a.base_model_name_or_path for a in report.adapters if a.base_model_name_or_path),
                                 None)
        if not base_spec:
            raise EvaluationError("eval needs --base (the adapters name no base)")
        base_path = resolve_base_weights(base_spec)
        return _run(report, details, base_path, eval_task, batch_size, max_length, device, positive_label,
                    predictions, submission, progress)
    finally:
        for d in details:
            d["source"].close()


def _run(report: Report, details: list[dict[str, Any]], base_path: Path, task: EvalTask, batch_size: int,
         max_length: int, device: str, positive_label: str | None, predictions: str | None,
         submission: str | None, progress: bool) -> Report:
    from loravet.evaluation.backend import TransformersBackend

    skipped: dict[str, str] = {}
    to_load: list[tuple[str, Path, str, int]] = []
    pos = _positive_index(positive_label)
    for a in report.adapters:
        if a.finding("unsafe-pickle"):
            skipped[a.name] = "carries an unsafe pickle: not loaded"
        elif a.load_outcome == "fails":
            skipped[a.name] = "PEFT would raise on it (load outcome fails): not loaded"
        else:
            to_load.append((a.name, Path(a.path), _adapter_kind(a), pos))
    backend = TransformersBackend(base_path, device=device, batch_size=batch_size, max_length=max_length)
    started = time.perf_counter()
    backend.load()
    attached: list[tuple[str, Path, str, int]] = []
    for item in to_load:
        try:
            backend.attach([item])
            attached.append(item)
        except Exception as exc:  # PEFT raised after all: that is the finding
            skipped[item[0]] = f"PEFT raised while loading it: {type(exc).__name__}: {str(exc)[:160]}"
    load_seconds = time.perf_counter() - started
    prompts = [task.prompt(r) for r in task.rows]
    scores: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    with _Progress(len(prompts) * (len(attached) + 1), progress) as bar:
        scores["base"] = backend.score(prompts, None, bar.task("base", len(prompts)))
        for name, *_ in attached:
            scores[name] = backend.score(prompts, name, bar.task(name, len(prompts)))
    score_seconds = time.perf_counter() - t0

    by_name = {a.name: a for a in report.adapters}
    degenerate: set[str] = set()
    for name, *_ in attached:
        reason = metrics.degenerate_reason(scores[name], scores["base"])
        if reason:
            degenerate.add(name)
            s = scores[name]
            by_name[name].add(make_finding(
                "degenerate-predictions", f"{reason} over {len(s)} rows", reason=reason,
                mean=round(float(np.nanmean(s)), 6) if np.any(np.isfinite(s)) else None,
                std=round(float(np.nanstd(s)), 8) if np.any(np.isfinite(s)) else None))
    members = [n for n, *_ in attached if n not in degenerate]
    groups = [r[task.group_column] for r in task.rows] if task.group_column else None
    columns: dict[str, np.ndarray] = dict(scores)
    evaluation: dict[str, Any] = {
        "metric": "rule_mean_auc" if task.group_column else "auc", "rows": len(task.rows),
        "prompt_version": task.prompt_version, "prompt": task.template, "task": task.name,
        "scores": {n: _score_block(task, s) for n, s in scores.items()},
        "skipped": skipped or None, "notes": task.notes + backend.notes or None,
        "timing": {"load_s": round(load_seconds, 2), "score_s": round(score_seconds, 2),
                   "rows_per_s": round(len(prompts) * len(scores) / max(score_seconds, 1e-9), 2)},
        "device": backend.device, "dtype": backend.dtype, "parameters_in_memory": backend.parameter_count(),
    }
    if len(attached) > 1 and members:
        ens = metrics.ensemble_mean([scores[m] for m in members])
        columns["ensemble"] = ens
        evaluation["scores"]["ensemble"] = {**_score_block(task, ens), "members": members}
        if len(members) > 1:
            rank = metrics.ensemble_rank([scores[m] for m in members], groups)
            evaluation["scores"]["ensemble_rank"] = {**_score_block(task, rank), "members": members}
    evaluation["agreement"] = metrics.rank_correlation(scores)
    evaluation["histograms"] = {n: metrics.histogram(s) for n, s in columns.items()}
    labels = task.labels
    if labels is not None and groups is not None:
        roc: dict[str, dict[str, list[list[float]]]] = {}
        for g in sorted(set(groups))[:6]:
            mask = np.asarray(groups) == g
            y = np.asarray(labels)[mask]
            if len(set(y.tolist())) < 2:
                continue
            roc[g] = {n: metrics.roc_points(y, s[mask]) for n, s in columns.items() if np.all(np.isfinite(s))}
        evaluation["roc"] = roc
    if predictions:
        _write_predictions(predictions, task, columns)
        evaluation["predictions_file"] = predictions
    if submission:
        source = "ensemble" if "ensemble" in columns else (members[0] if members else
                                                           (attached[0][0] if attached else "base"))
        try:
            with open(submission, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["row_id", "rule_violation"])
                for i, row in enumerate(task.rows):
                    w.writerow([row[task.id_column], f"{float(columns[source][i]):.8f}"])
        except OSError as exc:
            raise EvaluationError(f"cannot write {submission}: {exc.strerror or exc}") from None
        evaluation["submission"] = {"file": submission, "from": source}
    report.evaluation = evaluation
    return report

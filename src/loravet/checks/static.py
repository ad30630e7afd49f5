"""The stages that read one adapter and judge its fit to the base: config, weights, weight statistics, base,
architecture, load prediction and replay (loravet.pipeline lists them in order).

Each stage is a function of the AdapterContext: it fills the context fields it owns, describes the adapter
in the report's fields, and returns its findings; the pipeline adds them to the report. No torch,
transformers or peft is imported here (the meta-device fallback in loravet.base and the replay aside).
"""

from __future__ import annotations

import bisect
import importlib
import importlib.machinery
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from loravet.adapter.config import ConfigError, LoraAdapterConfig, load_adapter_config, nonfinite_numbers
from loravet.adapter.limits import PathEscape, hold_alarms
from loravet.adapter.patterns import CatastrophicPattern, pattern_match
from loravet.adapter.tensors import WeightFile
from loravet.base.catalog import lookup_catalog
from loravet.base.resolve import resolve_base
from loravet.checks.fingerprint import AdapterShape, adapter_shape, fingerprint
from loravet.checks.load_findings import LoadKeys, load_findings
from loravet.checks.peft_load import LoadPrediction, predict_load
from loravet.checks.provenance import readme_metadata
from loravet.checks.weight_stats import TensorFacts, batched_update_stats, tensor_facts
from loravet.checks.weights_file import read_weights, weights_present
from loravet.context import AdapterContext, Collector
from loravet.extras import replay_available
from loravet.findings import Finding, make_finding
from loravet.results import AdapterReport
from loravet.sources.resolve import AdapterSource

__all__ = [
    "architecture_stage",
    "base_stage",
    "config_stage",
    "config_weights_stage",
    "kfold_stage",
    "prediction_stage",
    "remote_finish_stage",
    "replay_stage",
    "unmodelled_type_stage",
    "update_stats_stage",
    "weight_statistics_stage",
    "weights_stage",
]


def config_stage(ctx: AdapterContext) -> list[Finding]:
    """adapter_config.json: parsed, described in the report, and its own problems."""
    folder, report = ctx.folder, ctx.report
    ctx.files = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    remote = ctx.source.remote  # an hf: adapter fetched header-only (loravet.sources.remote.RemoteAdapter)
    if remote is not None:
        ctx.files = remote.top_level_files()
    report.extra["files"] = ctx.files
    cfg_path = folder / "adapter_config.json"
    if not cfg_path.exists():
        return [
            make_finding(
                "config-missing", "no adapter_config.json: PEFT cannot build the adapter", file="adapter_config.json"
            )
        ]
    try:
        cfg = ctx.config = load_adapter_config(cfg_path)
    except ConfigError as exc:
        code = "path-escape" if isinstance(exc.__cause__, PathEscape) else "unreadable-file"
        return [make_finding(code, str(exc), file="adapter_config.json")]
    _config_fields(report, cfg)
    return config_findings(cfg)


def config_findings(cfg: LoraAdapterConfig) -> list[Finding]:
    out: list[Finding] = []
    if cfg.foreign_format:
        out.append(
            make_finding(
                "unsupported-adapter-type", f"{cfg.foreign_format}: loravet cannot judge it", format=cfg.foreign_format
            )
        )
    if cfg.unknown_keys:
        kind = cfg.peft_type if cfg.peft_type_known else "LoRA"
        out.append(
            make_finding(
                "unknown-config-keys",
                f"{len(cfg.unknown_keys)} key(s) no PEFT {kind} config "
                f"writes: {', '.join(k[:80] for k in cfg.unknown_keys[:8])}",
                keys=cfg.unknown_keys[:100],
                count=len(cfg.unknown_keys),
            )
        )
    if cfg.legacy_keys:
        out.append(
            make_finding(
                "legacy-config-schema", "old PEFT schema keys: " + ", ".join(cfg.legacy_keys), keys=cfg.legacy_keys
            )
        )
    if cfg.problems:
        out.append(make_finding("invalid-config", "; ".join(cfg.problems), problems=cfg.problems))
    if cfg.is_lora and (bad := nonfinite_numbers(cfg)):
        out.append(
            make_finding(
                "config-nonfinite",
                f"{', '.join(bad)} is {', '.join(map(str, bad.values()))}: "
                "PEFT loads it and every output of the model is Inf or NaN",
                values={k: str(v) for k, v in bad.items()},
            )
        )
    return out


def _config_fields(report: AdapterReport, cfg: LoraAdapterConfig) -> None:
    report.peft_type = cfg.peft_type
    report.task_type = cfg.task_type
    report.base_model_name_or_path = cfg.base_model_name_or_path
    report.peft_version = cfg.peft_version
    if cfg.is_lora:
        report.r = cfg.r
        report.lora_alpha = cfg.lora_alpha if not float(cfg.lora_alpha).is_integer() else int(cfg.lora_alpha)
        report.scaling = cfg.scaling
        report.use_rslora = cfg.use_rslora
        report.use_dora = cfg.use_dora
        report.target_modules = cfg.target_modules_as_written()
        report.lora_dropout = cfg.lora_dropout
        if cfg.rank_pattern or cfg.alpha_pattern:
            report.extra["patterns"] = {"rank_pattern": cfg.rank_pattern, "alpha_pattern": cfg.alpha_pattern}


def weights_stage(ctx: AdapterContext) -> list[Finding]:
    """The weight file PEFT would load, parsed (header and index; values in the next stage)."""
    remote = ctx.source.remote
    if remote is not None:
        collected = Collector.like(ctx.report)
        weights, found = remote.load_weights(collected), collected.findings
        ctx.weights_present = remote.weights_present()
    else:
        weights, found = read_weights(ctx.folder)
        ctx.weights_present = weights_present(ctx.folder)
    ctx.weights = weights
    if weights is not None:
        ctx.weights_path = weights.path
        ctx.report.trainable_params = weights.total_elements
        ctx.report.weights = {
            "file": Path(weights.path).name,
            "format": weights.format,
            "bytes": weights.size,
            "dtypes": weights.dtypes,
            "tensors": len(weights.tensors),
        }
    return list(found)


def weight_statistics_stage(ctx: AdapterContext) -> list[Finding]:
    """Every tensor's values read once: NaN/Inf, all-zero tensors (for the prediction), the file's size."""
    weights = ctx.weights
    if weights is None or not ctx.options.compute_stats or weights.reader is None:  # None: header-only
        return []
    ctx.values, errors = weights.read_all()
    ctx.facts = tensor_facts(ctx.values)
    return weights_findings(weights, ctx.facts, errors)


def config_weights_stage(ctx: AdapterContext) -> list[Finding]:
    """What the file's tensors say about the modules they adapt, against what the config says."""
    cfg, weights = ctx.config, ctx.weights
    if weights is not None:
        ctx.shape = adapter_shape(weights)
        if cfg is None or not cfg.is_lora:
            return []
        try:
            return config_weights_findings(cfg, ctx.shape)
        except CatastrophicPattern as exc:
            return [exc.finding()]
    if cfg is not None and cfg.is_lora and not ctx.weights_present:
        return [
            make_finding(
                "weights-file-missing",
                "neither adapter_model.safetensors nor adapter_model.bin is present: PEFT raises",
                files=ctx.files,
            )
        ]
    return []


def kfold_stage(ctx: AdapterContext) -> list[Finding]:
    """Whether the adapter is fold N of a k-fold set (its siblings are judged across adapters)."""
    ctx.report.kfold = _kfold(ctx.source)
    return []


def base_stage(ctx: AdapterContext) -> list[Finding]:
    """The base: --base, else the config's base_model_name_or_path; catalog, local folder or hub metadata."""
    if not ctx.options.resolve:
        return []
    cfg, report = ctx.config, ctx.report
    spec = ctx.options.base_spec or (cfg.base_model_name_or_path or _card_base(ctx.folder) if cfg else None)
    head, labels = _head_hint(cfg, ctx.weights)
    resolution = resolve_base(spec, head=head, num_labels=labels, local_head=ctx.options.task_head)
    arch = ctx.arch = resolution.architecture
    ctx.base_resolution = resolution.reason
    out: list[Finding] = []
    if resolution.warning:
        out.append(make_finding("base-metadata-unavailable", resolution.warning, base=spec))
    if arch is None:
        out.append(make_finding("base-unresolved", f"no base: {resolution.reason}", base=spec))
        return out
    report.base = arch.summary()
    report.base["source"] = arch.source
    report.base.update(resolution.report_fields())
    origin = arch.config.get("_loravet_origin")
    if origin:
        report.base["origin"] = origin
    if arch.quantization:
        report.base["quantization"] = arch.quantization
    return out


def _card_base(folder: Path) -> str | None:
    """The base the model card names when the config names none (one only: several name no single base)."""
    names = readme_metadata(folder)[0].get("base_model", [])
    return names[0] if len(names) == 1 else None


def architecture_stage(ctx: AdapterContext) -> list[Finding]:
    """The architecture the tensor shapes trace to, against the named base."""
    arch, shape = ctx.arch, ctx.shape
    if ctx.weights is None:
        return []
    entry = lookup_catalog(arch.name) if arch is not None and arch.source == "catalog" else None
    display = entry.name if entry else (arch.config.get("_loravet_origin") if arch is not None else None)
    fp = fingerprint(shape, arch, display)
    ctx.report.architecture = fp.to_json()
    if arch is not None and shape.modules and fp.fits_named is False and fp.best_match:
        return [
            make_finding(
                "architecture-mismatch",
                f"the tensor shapes fit {fp.best_match} ({fp.num_layers} layers, hidden "
                f"{fp.hidden_size}), not {arch.name} ({arch.num_layers} layers, hidden {arch.hidden_size})",
                traced=fp.best_match,
                named=arch.name,
                candidates=fp.candidates[:5],
            )
        ]
    return []


def prediction_stage(ctx: AdapterContext) -> list[Finding]:
    """What PEFT's load would do (loads / partial / fails / inert / unknown), predicted from the snapshot."""
    cfg, report, arch = ctx.config, ctx.report, ctx.arch
    if cfg is None:
        report.load_outcome = "unknown" if not ctx.options.resolve or arch is None else "fails"
        return []
    if not ctx.options.resolve:
        return []
    out: list[Finding] = []
    weights, present = ctx.weights, ctx.weights_present
    try:
        pred = predict_load(
            cfg,
            weights if weights is not None or not present else None,
            arch,
            ctx.facts if ctx.options.compute_stats else None,
        )
    except CatastrophicPattern as exc:
        out.append(exc.finding())
        pred = LoadPrediction(
            "fails" if exc.decided else "unknown", exc.reason, failure=exc.reason, failure_code="regex-catastrophic"
        )
    if weights is None and present and cfg.is_lora and arch is not None:
        pred = LoadPrediction("fails", "the weight file cannot be read: PEFT raises too")
    ctx.prediction = pred
    report.load_outcome = pred.outcome
    report.extra["load_reason"] = pred.reason
    if pred.matched is not None:
        report.keys = pred.keys_json()
    if arch is not None and cfg.is_lora:
        out += _load_findings(pred, arch.name, cfg)
    elif pred.outcome == "fails" and pred.failure_code and report.finding(pred.failure_code) is None:
        # decided from the config alone (an unknown peft_type, a config PEFT rejects): PEFT raises whatever the
        # base, so the reason is a finding even where the base or the type leaves the rest unpredicted
        out += _failure_findings(pred, arch.name if arch is not None else None, cfg)
    report.verdict = {"source": "predicted", "peft": pred.peft_version}  # the PEFT its tables come from
    return out


def _failure_findings(pred: LoadPrediction, base_name: str | None, cfg: LoraAdapterConfig) -> list[Finding]:
    """Why PEFT raises, where the prediction is `fails`."""
    out: list[Finding] = []
    if pred.failure_code == "shape-mismatch":
        out.append(
            make_finding(
                "shape-mismatch",
                pred.reason,
                count=len(pred.mismatched),
                examples=[
                    {"tensor": k, "file_shape": list(a), "base_shape": list(b)} for k, a, b in pred.mismatched[:8]
                ],
            )
        )
    elif pred.failure_code in ("target-not-found", "invalid-config", "weights-file-missing"):
        out.append(
            make_finding(pred.failure_code, pred.reason, target_modules=cfg.target_modules_as_written(), base=base_name)
        )
    elif pred.failure_code == "modules-to-save-missing":
        out.append(make_finding("modules-to-save-missing", pred.reason, modules_to_save=pred.modules_to_save))
    return out


def _load_findings(pred: LoadPrediction, base_name: str, cfg: LoraAdapterConfig) -> list[Finding]:
    out = _failure_findings(pred, base_name, cfg)
    if pred.outcome == "fails":
        return out
    return out + load_findings(
        LoadKeys(
            missing_keys=pred.missing_keys,
            missing_modules=sorted(
                {k.rsplit(".lora_", 1)[0].removeprefix("base_model.model.") for k in pred.missing_keys}
            ),
            unexpected_keys=pred.unexpected_keys,
            overwritten_base=pred.overwritten_base,
            random_init_modules=pred.random_init_modules,
            random_init_why=f" (init_lora_weights={cfg.init_lora_weights!r})",
            zero_modules=pred.zero_update_modules,
            landed_modules=sum(1 for c in pred.created if c.landed),
        ),
        base_name,
    )


def replay_stage(ctx: AdapterContext) -> list[Finding]:
    """The load replayed with the installed PEFT on a meta-device base, when asked or when the predictor
    answered `unknown`. The replay (loravet.checks.replay) rewrites the verdict in the report itself: it
    replaces the predictor's load findings, so it runs on the report the stages before it filled."""
    cfg, pred = ctx.config, ctx.prediction
    if cfg is None or pred is None:
        return []
    _maybe_replay(ctx, pred.outcome, cfg, ctx.options.base_spec or cfg.base_model_name_or_path)
    return []


def unmodelled_type_stage(ctx: AdapterContext) -> list[Finding]:
    """A PEFT type the predictor does not model, and no replay here to decide it."""
    cfg, report = ctx.config, ctx.report
    if (
        cfg is not None
        and ctx.prediction is not None
        and report.load_outcome == "unknown"
        and not cfg.is_lora
        and cfg.peft_type_known
        and not cfg.foreign_format
        and (report.verdict or {}).get("source") == "predicted"
    ):
        return [
            make_finding(
                "unsupported-adapter-type",
                f"peft_type {cfg.peft_type!r}: the predictor models "
                "LoRA only; the installed PEFT decides it with --replay (needs the eval extra: "
                "torch, transformers, peft)",
                peft_type=cfg.peft_type,
            )
        ]
    return []


def update_stats_stage(ctx: AdapterContext) -> list[Finding]:
    """Per-module update norm and effective rank, for the report (no finding of its own)."""
    pred = ctx.prediction
    if (
        pred is not None
        and pred.created
        and ctx.weights is not None
        and ctx.options.compute_stats
        and (ctx.options.update_stats)
    ):
        ctx.report.extra["update_stats"] = _update_stats(pred, ctx.values)
    return []


def remote_finish_stage(ctx: AdapterContext) -> list[Finding]:
    """An hf: adapter: the repository's file list, the bytes fetched, and what header-only could not see. The
    hub source (loravet.sources.remote) writes this into the report itself, verdict included."""
    if ctx.source.remote is not None:
        ctx.source.remote.finish(ctx.report)
    return []


_FOLD = re.compile(r"^(?P<stem>.*?)[-_.]?fold[-_]?(?P<n>\d+)$", re.I)


def _kfold(source: AdapterSource) -> dict[str, Any] | None:
    """fold N of a set: siblings named alike beside the folder, or `-foldN` hub repos in the cache."""
    m = _FOLD.match(source.default_name)
    if not m:
        return None
    stem = m.group("stem").lower()
    siblings: list[str] = []
    candidates: list[str] = []
    try:
        if source.kind == "hub" and source.hub_id:
            # huggingface_hub only for a hub adapter: a local check does not pay for its import
            from huggingface_hub import constants

            owner = source.hub_id.split("/")[0]
            prefix = f"models--{owner}--"
            candidates = [
                p.name[len(prefix) :] for p in Path(constants.HF_HUB_CACHE).iterdir() if p.name.startswith(prefix)
            ]
        elif source.kind == "folder":
            candidates = [p.name for p in source.path.parent.iterdir() if p.is_dir()]
    except (OSError, ImportError):
        candidates = []
    for cand in sorted(candidates):
        sm = _FOLD.match(cand)
        if cand != source.default_name and sm and sm.group("stem").lower() == stem:
            siblings.append(cand)
    return {"fold": int(m.group("n")), "siblings": siblings}


def _dot_tails(text: str, max_len: int) -> Iterator[str]:
    """Every text[i + 1:] after a "." in `text` that is at most `max_len` characters long (right to left)."""
    i = text.rfind(".")
    while i >= 0 and len(text) - i - 1 <= max_len:
        yield text[i + 1 :]
        i = text.rfind(".", 0, i)


def config_weights_findings(cfg: LoraAdapterConfig, shape: AdapterShape) -> list[Finding]:
    """config-weights-disagree: ranks, target modules and layers as the config states them vs the file."""
    if not shape.modules:
        return []
    problems: list[str] = []
    evidence: dict[str, Any] = {}  # JSON-shaped: the finding's evidence
    for key, disagreement in (
        ("rank", _rank_disagreement(cfg, shape)),
        ("targets", _target_disagreement(cfg, shape)),
        ("layers", _layer_disagreement(cfg, shape)),
    ):
        if disagreement is not None:
            problems.append(disagreement[0])
            evidence[key] = disagreement[1]
    if not problems:
        return []
    return [
        make_finding(
            "config-weights-disagree",
            "adapter_config.json and the weights disagree: " + "; ".join(problems),
            **evidence,
        )
    ]


def _rank_disagreement(cfg: LoraAdapterConfig, shape: AdapterShape) -> tuple[str, dict[str, Any]] | None:
    """Modules whose rank in the file is not the config's (r, or its rank_pattern entry)."""
    rank_off: dict[str, tuple[int, int]] = {}
    for module, (_, _, r) in shape.modules.items():
        if r is None:
            continue
        expected = cfg.r
        for pat, val in cfg.rank_pattern.items():
            try:
                if pattern_match(rf"(.*\.)?({pat})$", module, field="rank_pattern", source=pat):
                    expected = val
                    break
            except re.error:
                continue
        if r != expected:
            rank_off[module] = (r, expected)
    if not rank_off:
        return None
    file_ranks = sorted({v[0] for v in rank_off.values()})
    return (
        f"rank {'/'.join(map(str, file_ranks))} in the file vs r={cfg.r} in the config",
        {"file": file_ranks, "config": cfg.r, "modules": sorted(rank_off)[:20]},
    )


def _target_disagreement(cfg: LoraAdapterConfig, shape: AdapterShape) -> tuple[str, dict[str, Any]] | None:
    """Modules in the file no target names, and targets that name no module in the file."""
    if not isinstance(cfg.target_modules, list):
        return None
    leaf_names = {k.rsplit(".", 1)[-1] for k in shape.kinds}
    targets = set(cfg.target_modules)
    # the same tests as `any(...)` over every pair, through sets: 300,000 target_modules cost one pass
    # tails longer than the longest name they are compared with cannot match: a 3 MB dotted target once
    # built 1.5 million tails of 1.5 MB each (8 GB, analysis-budget)
    longest_leaf = max(map(len, leaf_names), default=0)
    longest_target = max(map(len, targets), default=0)
    target_tails = {x for t in targets for x in _dot_tails(t, longest_leaf)}  # t.endswith("." + x)
    in_file_not_config = sorted(
        n
        for n in leaf_names
        if not (n in targets or n in target_tails or any(x in targets for x in _dot_tails(n, longest_target)))
    )
    names = leaf_names | shape.kinds
    # any(n.endswith(t)) as a prefix search among the reversed names: a set of every suffix of every name
    # held names x length strings (1 GB for 50,000 tensor names of 150 characters)
    reversed_names = sorted(n[::-1] for n in names)
    longest_name = max(map(len, names), default=0)

    def some_name_ends_with(t: str) -> bool:
        i = bisect.bisect_left(reversed_names, t[::-1])
        return i < len(reversed_names) and reversed_names[i].startswith(t[::-1])

    in_config_not_file = sorted(
        t for t in targets if not (some_name_ends_with(t) or any(x in names for x in _dot_tails(t, longest_name)))
    )
    if not in_file_not_config and not in_config_not_file:
        return None
    return (
        "target modules differ",
        {
            "in_file_not_config": in_file_not_config[:100],
            "in_config_not_file": in_config_not_file[:100],
            "counts": [len(in_file_not_config), len(in_config_not_file)],
        },
    )


def _layer_disagreement(cfg: LoraAdapterConfig, shape: AdapterShape) -> tuple[str, dict[str, Any]] | None:
    layers = cfg.layers_to_transform
    if layers is None or not shape.layers:
        return None
    wanted = {layers} if isinstance(layers, int) else set(layers)
    if wanted == shape.layers:
        return None
    return "layers differ from layers_to_transform", {"file": sorted(shape.layers), "config": sorted(wanted)}


def weights_findings(weights: WeightFile, facts: dict[str, TensorFacts], errors: dict[str, str]) -> list[Finding]:
    """NaN/Inf values, tensors that cannot be read, a size the header and tensors do not account for."""
    out: list[Finding] = []
    bad = {k: f.nonfinite for k, f in facts.items() if f.nonfinite}
    if bad:
        out.append(
            make_finding(
                "nonfinite-weights",
                f"{len(bad)} tensor(s) contain NaN/Inf ({sum(bad.values()):,} values)",
                tensors=sorted(bad)[:20],
                count=sum(bad.values()),
            )
        )
    if errors:
        out.append(
            make_finding(
                "unreadable-file",
                f"{len(errors)} tensor(s) of {Path(weights.path).name} cannot be read",
                file=Path(weights.path).name,
                tensors=sorted(errors)[:10],
            )
        )
    if weights.problems:
        out.append(
            make_finding(
                "unreadable-file", weights.problems[0], file=Path(weights.path).name, problems=weights.problems[:10]
            )
        )
    tensor_bytes = sum(t.nbytes for t in weights.tensors.values())
    if weights.expected_size is not None and weights.size != weights.expected_size:
        extra = weights.size - weights.expected_size
        out.append(
            make_finding(
                "size-implausible",
                f"{Path(weights.path).name} is {weights.size:,} bytes but its header and tensors "
                f"account for {weights.expected_size:,}: {extra:,} unexplained trailing bytes",
                file_bytes=weights.size,
                expected_bytes=weights.expected_size,
            )
        )
    elif weights.expected_size is None and weights.size > 2 * tensor_bytes + 256 * 1024:
        out.append(
            make_finding(
                "size-implausible",
                f"{Path(weights.path).name} is {weights.size:,} bytes for {tensor_bytes:,} bytes of tensors",
                file_bytes=weights.size,
                tensor_bytes=tensor_bytes,
            )
        )
    return out


def _head_hint(cfg: LoraAdapterConfig | None, weights: WeightFile | None) -> tuple[str | None, int]:
    """A SEQ_CLS adapter is loaded on AutoModelForSequenceClassification: its head size is the file's."""
    if cfg is None or (cfg.task_type or "").upper() != "SEQ_CLS":
        return None, 2
    labels = 2
    if weights is not None:
        for key, info in weights.tensors.items():
            parts = key.split(".")  # the head itself, not `pre_classifier` (DistilBERT) or a dense before it
            if (
                len(parts) >= 2
                and parts[-1] == "weight"
                and parts[-2] in ("score", "classifier")
                and len(info.shape) == 2
            ):
                labels = info.shape[0]
                break
    return "seq_cls", labels


def import_replay_stack() -> None:
    """torch, transformers and peft, each imported whole or not at all. Their first import runs inside an
    adapter's budget: cut there (by the time budget, or by the memory cap failing a library's mapping) it left
    half-imported modules behind, and every later replay in the process failed ("Could not import module
    'AutoModel'"): in a notebook, until a restart. The time budget waits for the import (seconds) and stops
    the adapter right after it; a failed import takes its partial modules with it, so the next one starts anew
    (torch's, once its C extension is loaded, stay: that extension cannot be initialised twice)."""
    for name in ("torch", "transformers", "peft"):
        if name in sys.modules:
            continue
        before = set(sys.modules)
        try:
            with hold_alarms, warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*IProgress not found.*")  # tqdm.auto, as replay_load
                importlib.import_module(name)  # heavy: replay only
        except BaseException:
            keep_torch = "torch._C" in sys.modules
            for mod in set(sys.modules) - before:
                loader = getattr(getattr(sys.modules.get(mod), "__spec__", None), "loader", None)
                if isinstance(loader, importlib.machinery.ExtensionFileLoader):
                    continue  # a C extension is initialised once per process: kept, and found again
                if not (keep_torch and (mod == "torch" or mod.startswith("torch."))):
                    sys.modules.pop(mod, None)
            raise


def _maybe_replay(ctx: AdapterContext, predicted: str, cfg: LoraAdapterConfig, spec: str | None) -> None:
    """Replace the prediction by a replay when asked, or when the predictor answered `unknown`."""
    replay, arch, weights, folder, report = ctx.options.replay, ctx.arch, ctx.weights, ctx.folder, ctx.report
    if replay is False or arch is None:
        return
    if replay is None and (predicted != "unknown" or cfg.foreign_format):
        return
    if not replay_available():
        if replay:
            report.extra["replay"] = {
                "skipped": "torch, transformers and peft are needed to replay (pip install 'loravet[eval]')"
            }
        return
    if weights is None and weights_present(folder):
        return  # a weight file loravet cannot read safely is never handed to PEFT: the prediction stands
    if weights is not None and weights.reader is None:
        return  # header only (an hf: adapter): no values to hand to PEFT, the prediction and its reason stand
    _, labels = _head_hint(cfg, weights)
    # The base's own head when it has one (a local or hub *ForSequenceClassification): a file head of another
    # size is PEFT's size mismatch there, not a head built to fit the file.
    heads = [
        m
        for m in map(arch.module, ("score", "classifier", "classifier.out_proj"))
        if m is not None and m.kind == "linear" and m.out_features
    ]
    if heads:
        labels = heads[0].out_features or labels
    seq_cls = (cfg.task_type or "").upper() == "SEQ_CLS"
    base_config = arch.config
    if seq_cls and not heads and base_config.get("architectures"):
        # no head in the resolved base: the predictor took the folder as saved (e.g. a *ForCausalLM); the
        # replay builds that class too, not AutoModelForSequenceClassification
        base_config = {**base_config, "_loravet_as_saved": True}
    base_dir = Path(spec) if spec and arch.source == "local" and Path(spec).is_dir() else None
    # lazy (cold start, #12): the replay module loads only when a replay runs (its torch, transformers and
    # peft imports are inside it already)
    from loravet.checks.replay import replay_into_report

    import_replay_stack()
    replay_into_report(report, folder, weights, cfg.raw, base_config, arch.name, labels if seq_cls else None, base_dir)


def _update_stats(pred: LoadPrediction, values: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per-module update statistics, column-wise (a 1,000-adapter audit keeps lists, not dicts)."""
    items = []
    for c in pred.created:
        a_key = next((fk for ck, fk in c.landed.items() if ck.endswith(("lora_A.weight", "lora_embedding_A"))), None)
        b_key = next((fk for ck, fk in c.landed.items() if ck.endswith(("lora_B.weight", "lora_embedding_B"))), None)
        if a_key in values and b_key in values:
            items.append((c.name, values[a_key], values[b_key], c.scaling))
    stats = batched_update_stats(items)

    def clean(x: float, digits: int) -> float | None:
        return round(x, digits) if x == x else None

    out: dict[str, Any] = {
        "module": [st.module for st in stats],
        "rank": [st.rank for st in stats],
        "scaling": [st.scaling for st in stats],
        "norm": [clean(st.norm, 6) for st in stats],
        "effective_rank": [clean(st.effective_rank, 3) for st in stats],
    }
    skipped = sum(st.skipped for st in stats)
    if skipped:
        out["skipped"] = (
            f"{skipped} of {len(stats)} module(s) not computed: their eigenproblems are over the "
            "cost budget (norm and effective_rank null)"
        )
    return out

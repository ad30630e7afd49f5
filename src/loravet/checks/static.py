"""The static pipeline for one adapter: files -> config & weights -> base -> checks -> findings.

No torch, transformers or peft is imported here (the meta-device fallback in loravet.base aside).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loravet.adapter.config import ConfigError, LoraAdapterConfig, load_adapter_config, nonfinite_numbers
from loravet.adapter.patterns import CatastrophicPattern, pattern_match
from loravet.adapter.tensors import WeightFile
from loravet.base.architecture import BaseArchitecture
from loravet.base.catalog import lookup_catalog
from loravet.base.resolve import resolve_base
from loravet.checks.fingerprint import AdapterShape, adapter_shape, fingerprint
from loravet.checks.load_findings import LoadKeys, add_load_findings
from loravet.checks.peft_load import LoadPrediction, predict_load
from loravet.checks.provenance import readme_metadata
from loravet.checks.weight_stats import TensorFacts, batched_update_stats, tensor_facts
from loravet.findings import Severity, make_finding
from loravet.report import AdapterReport
from loravet.sources.resolve import AdapterSource
from loravet.sources.weights import load_weights

__all__ = ["analyze_adapter", "load_weights"]

_SAFE, _BIN = "adapter_model.safetensors", "adapter_model.bin"


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
            from huggingface_hub import constants

            owner = source.hub_id.split("/")[0]
            prefix = f"models--{owner}--"
            candidates = [p.name[len(prefix):] for p in Path(constants.HF_HUB_CACHE).iterdir()
                          if p.name.startswith(prefix)]
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
        yield text[i + 1:]
        i = text.rfind(".", 0, i)


def _config_weights_findings(report: AdapterReport, cfg: LoraAdapterConfig, shape: AdapterShape) -> None:
    if not shape.modules:
        return
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
    problems: list[str] = []
    evidence: dict[str, Any] = {}
    if rank_off:
        file_ranks = sorted({v[0] for v in rank_off.values()})
        problems.append(f"rank {'/'.join(map(str, file_ranks))} in the file vs r={cfg.r} in the config")
        evidence["rank"] = {"file": file_ranks, "config": cfg.r, "modules": sorted(rank_off)[:20]}
    if isinstance(cfg.target_modules, list):
        leaf_names = {k.rsplit(".", 1)[-1] for k in shape.kinds}
        targets = set(cfg.target_modules)
        # the same tests as `any(...)` over every pair, through sets: 300,000 target_modules cost one pass
        # tails longer than the longest name they are compared with cannot match: a 3 MB dotted target once
        # built 1.5 million tails of 1.5 MB each (8 GB, analysis-budget)
        longest_leaf = max(map(len, leaf_names), default=0)
        longest_target = max(map(len, targets), default=0)
        target_tails = {x for t in targets for x in _dot_tails(t, longest_leaf)}  # t.endswith("." + x)
        in_file_not_config = sorted(n for n in leaf_names if not (
            n in targets or n in target_tails or any(x in targets for x in _dot_tails(n, longest_target))))
        names = leaf_names | shape.kinds
        # any(n.endswith(t)) as a prefix search among the reversed names: a set of every suffix of every name
        # held names x length strings (1 GB for 50,000 tensor names of 150 characters)
        reversed_names = sorted(n[::-1] for n in names)
        longest_name = max(map(len, names), default=0)

        def some_name_ends_with(t: str) -> bool:
            i = bisect.bisect_left(reversed_names, t[::-1])
            return i < len(reversed_names) and reversed_names[i].startswith(t[::-1])

        in_config_not_file = sorted(t for t in targets if not (
            some_name_ends_with(t) or any(x in names for x in _dot_tails(t, longest_name))))
        if in_file_not_config or in_config_not_file:
            problems.append("target modules differ")
            evidence["targets"] = {"in_file_not_config": in_file_not_config[:100],
                                   "in_config_not_file": in_config_not_file[:100],
                                   "counts": [len(in_file_not_config), len(in_config_not_file)]}
    layers = cfg.layers_to_transform
    if layers is not None and shape.layers:
        wanted = {layers} if isinstance(layers, int) else set(layers)
        if wanted != shape.layers:
            problems.append("layers differ from layers_to_transform")
            evidence["layers"] = {"file": sorted(shape.layers), "config": sorted(wanted)}
    if problems:
        report.add(make_finding("config-weights-disagree",
                                "adapter_config.json and the weights disagree: " + "; ".join(problems), **evidence))


def _weights_findings(report: AdapterReport, weights: WeightFile, facts: dict[str, TensorFacts],
                      errors: dict[str, str]) -> None:
    bad = {k: f.nonfinite for k, f in facts.items() if f.nonfinite}
    if bad:
        report.add(make_finding("nonfinite-weights",
                                f"{len(bad)} tensor(s) contain NaN/Inf ({sum(bad.values()):,} values)",
                                tensors=sorted(bad)[:20], count=sum(bad.values())))
    if errors:
        report.add(make_finding("unreadable-file", f"{len(errors)} tensor(s) of {Path(weights.path).name} cannot be "
                                "read", file=Path(weights.path).name, tensors=sorted(errors)[:10]))
    if weights.problems:
        report.add(make_finding("unreadable-file", weights.problems[0], file=Path(weights.path).name,
                                problems=weights.problems[:10]))
    tensor_bytes = sum(t.nbytes for t in weights.tensors.values())
    if weights.expected_size is not None and weights.size != weights.expected_size:
        extra = weights.size - weights.expected_size
        report.add(make_finding(
            "size-implausible", f"{Path(weights.path).name} is {weights.size:,} bytes but its header and tensors "
            f"account for {weights.expected_size:,}: {extra:,} unexplained trailing bytes",
            file_bytes=weights.size, expected_bytes=weights.expected_size))
    elif weights.expected_size is None and weights.size > 2 * tensor_bytes + 256 * 1024:
        report.add(make_finding(
            "size-implausible", f"{Path(weights.path).name} is {weights.size:,} bytes for {tensor_bytes:,} bytes of "
            "tensors", file_bytes=weights.size, tensor_bytes=tensor_bytes))


def _load_findings(report: AdapterReport, pred: LoadPrediction, arch: BaseArchitecture,
                   cfg: LoraAdapterConfig) -> None:
    if pred.failure_code == "shape-mismatch":
        report.add(make_finding("shape-mismatch", pred.reason, count=len(pred.mismatched), examples=[
            {"tensor": k, "file_shape": list(a), "base_shape": list(b)} for k, a, b in pred.mismatched[:8]]))
    elif pred.failure_code in ("target-not-found", "invalid-config", "weights-file-missing"):
        report.add(make_finding(pred.failure_code, pred.reason,
                                target_modules=cfg.target_modules_as_written(), base=arch.name))
    elif pred.failure_code == "missing-weights":
        report.add(make_finding("missing-weights", pred.reason, severity=Severity.CRITICAL,
                                modules_to_save=pred.modules_to_save))
    if pred.outcome == "fails":
        return
    add_load_findings(report, LoadKeys(
        missing_keys=pred.missing_keys,
        missing_modules=sorted({k.rsplit(".lora_", 1)[0].removeprefix("base_model.model.") for k in pred.missing_keys}),
        unexpected_keys=pred.unexpected_keys, overwritten_base=pred.overwritten_base,
        random_init_modules=pred.random_init_modules, random_init_why=f" (init_lora_weights={cfg.init_lora_weights!r})",
        zero_modules=pred.zero_update_modules, landed_modules=sum(1 for c in pred.created if c.landed)), arch.name)


def analyze_adapter(source: AdapterSource, base_spec: str | None, *, resolve: bool = True,
                    compute_stats: bool = True, task_head: bool = False,
                    replay: bool | None = None) -> tuple[AdapterReport, dict[str, Any]]:
    """Inspect (resolve=False) or check one adapter. Returns the report and internal details (config,
    weights, base architecture, prediction) for later stages (compare, eval). `task_head`: a local base is
    judged with the head the adapter's task needs (eval loads it that way), not as saved. `replay`: True
    replays the load with the installed PEFT on a meta-device base; None replays only where the predictor
    answers `unknown` and torch/peft are installed; False never."""
    folder = source.path
    report = AdapterReport(name=source.name, path=str(folder), source=source.spec)
    details: dict[str, Any] = {"source": source}
    files = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    remote = source.remote  # an hf: adapter fetched header-only (loravet.sources.remote.RemoteAdapter)
    if remote is not None:
        files = remote.top_level_files()
    report.extra["files"] = files

    cfg: LoraAdapterConfig | None = None
    cfg_path = folder / "adapter_config.json"
    if cfg_path.exists():
        try:
            cfg = load_adapter_config(cfg_path)
        except ConfigError as exc:
            report.add(make_finding("unreadable-file", str(exc), file="adapter_config.json"))
    else:
        report.add(make_finding("unreadable-file", "no adapter_config.json: PEFT cannot build the adapter",
                                file="adapter_config.json"))
    details["config"] = cfg
    if cfg is not None:
        _config_fields(report, cfg)
        if cfg.foreign_format:
            report.add(make_finding("unsupported-adapter-type", f"{cfg.foreign_format}: loravet cannot judge it",
                                    format=cfg.foreign_format))
        if cfg.unknown_keys:
            kind = cfg.peft_type if cfg.peft_type_known else "LoRA"
            report.add(make_finding("unknown-config-keys", f"{len(cfg.unknown_keys)} key(s) no PEFT {kind} config "
                                    f"writes: {', '.join(k[:80] for k in cfg.unknown_keys[:8])}",
                                    keys=cfg.unknown_keys[:100], count=len(cfg.unknown_keys)))
        if cfg.legacy_keys:
            report.add(make_finding("legacy-config-schema", "old PEFT schema keys: " + ", ".join(cfg.legacy_keys),
                                    keys=cfg.legacy_keys))
        if cfg.problems:
            report.add(make_finding("invalid-config", "; ".join(cfg.problems), problems=cfg.problems))
        if cfg.is_lora and (bad := nonfinite_numbers(cfg)):
            report.add(make_finding("config-nonfinite", f"{', '.join(bad)} is {', '.join(map(str, bad.values()))}: "
                                    "PEFT loads it and every output of the model is NaN",
                                    values={k: str(v) for k, v in bad.items()}))

    weights = remote.load_weights(report) if remote is not None else load_weights(folder, report)
    present = remote.weights_present() if remote is not None else _weights_present(folder)
    details["weights"] = weights
    facts: dict[str, TensorFacts] = {}
    values: dict[str, Any] = {}
    shape = AdapterShape()
    if weights is not None:
        report.trainable_params = weights.total_elements
        report.weights = {"file": Path(weights.path).name, "format": weights.format, "bytes": weights.size,
                          "dtypes": weights.dtypes, "tensors": len(weights.tensors)}
        if compute_stats and weights.reader is not None:  # None: a header-only description
            values, errors = weights.read_all()
            facts = tensor_facts(values)
            _weights_findings(report, weights, facts, errors)
        shape = adapter_shape(weights)
        if cfg is not None and cfg.is_lora:
            try:
                _config_weights_findings(report, cfg, shape)
            except CatastrophicPattern as exc:
                report.add(exc.finding())
    elif cfg is not None and cfg.is_lora and not present:
        report.add(make_finding("weights-file-missing", "neither adapter_model.safetensors nor adapter_model.bin "
                                "is present: PEFT raises", files=files))
    details["facts"] = facts
    details["shape"] = shape
    report.kfold = _kfold(source)

    arch: BaseArchitecture | None = None
    if resolve:
        spec = base_spec or (cfg.base_model_name_or_path or _card_base(folder) if cfg else None)
        head, labels = _head_hint(cfg, weights)
        resolution = resolve_base(spec, head=head, num_labels=labels, local_head=task_head)
        arch = resolution.architecture
        details["base_resolution"] = resolution.reason
        if resolution.warning:
            report.add(make_finding("base-metadata-unavailable", resolution.warning, base=spec))
        if arch is None:
            report.add(make_finding("base-unresolved", f"no base: {resolution.reason}", base=spec))
        else:
            report.base = arch.summary()
            report.base["source"] = arch.source
            report.base.update(resolution.report_fields())
            origin = arch.config.get("_loravet_origin")
            if origin:
                report.base["origin"] = origin
            if arch.quantization:
                report.base["quantization"] = arch.quantization
    details["arch"] = arch

    entry = lookup_catalog(arch.name) if arch is not None and arch.source == "catalog" else None
    display = entry.name if entry else (arch.config.get("_loravet_origin") if arch is not None else None)
    fp = fingerprint(shape, arch, display) if weights is not None else None
    if fp is not None:
        report.architecture = fp.to_json()
        if arch is not None and shape.modules and fp.fits_named is False and fp.best_match:
            report.add(make_finding(
                "architecture-mismatch", f"the tensor shapes fit {fp.best_match} ({fp.num_layers} layers, hidden "
                f"{fp.hidden_size}), not {arch.name} ({arch.num_layers} layers, hidden {arch.hidden_size})",
                traced=fp.best_match, named=arch.name, candidates=fp.candidates[:5]))

    if cfg is None:
        report.load_outcome = "unknown" if not resolve or arch is None else "fails"
        details["prediction"] = None
    elif resolve:
        try:
            pred = predict_load(cfg, weights if weights is not None or not present else None, arch,
                                facts if compute_stats else None)
        except CatastrophicPattern as exc:
            report.add(exc.finding())
            pred = LoadPrediction("fails" if exc.decided else "unknown", exc.reason, failure=exc.reason,
                                  failure_code="regex-catastrophic")
        if weights is None and present and cfg.is_lora and arch is not None:
            pred = LoadPrediction("fails", "the weight file cannot be read: PEFT raises too")
        report.load_outcome = pred.outcome
        report.extra["load_reason"] = pred.reason
        if pred.matched is not None:
            report.keys = pred.keys_json()
        if arch is not None and cfg.is_lora:
            _load_findings(report, pred, arch, cfg)
        details["prediction"] = pred
        report.verdict = {"source": "predicted", "peft": pred.peft_version}  # the PEFT its tables come from
        _maybe_replay(report, replay, pred.outcome, cfg, weights, arch, folder,
                      base_spec or cfg.base_model_name_or_path)
        if (report.load_outcome == "unknown" and not cfg.is_lora and cfg.peft_type_known
                and not cfg.foreign_format and (report.verdict or {}).get("source") == "predicted"):
            # a PEFT type the predictor does not model, and no replay here to decide it
            report.add(make_finding("unsupported-adapter-type", f"peft_type {cfg.peft_type!r}: the predictor models "
                                    "LoRA only; the installed PEFT decides it with --replay (needs the eval extra: "
                                    "torch, transformers, peft)", peft_type=cfg.peft_type))
        if pred.created and weights is not None and compute_stats:
            report.extra["update_stats"] = _update_stats(pred, values)
    else:
        details["prediction"] = None
    details["weights_path"] = weights.path if weights is not None else None
    if remote is not None:
        remote.finish(report)
    return report, details


def _card_base(folder: Path) -> str | None:
    """The base the model card names when the config names none (one only: several name no single base)."""
    names = readme_metadata(folder)[0].get("base_model", [])
    return names[0] if len(names) == 1 else None


def _head_hint(cfg: LoraAdapterConfig | None, weights: WeightFile | None) -> tuple[str | None, int]:
    """A SEQ_CLS adapter is loaded on AutoModelForSequenceClassification: its head size is the file's."""
    if cfg is None or (cfg.task_type or "").upper() != "SEQ_CLS":
        return None, 2
    labels = 2
    if weights is not None:
        for key, info in weights.tensors.items():
            parts = key.split(".")  # the head itself, not `pre_classifier` (DistilBERT) or a dense before it
            if len(parts) >= 2 and parts[-1] == "weight" and parts[-2] in ("score", "classifier") \
                    and len(info.shape) == 2:
                labels = info.shape[0]
                break
    return "seq_cls", labels


def _maybe_replay(report: AdapterReport, replay: bool | None, predicted: str, cfg: LoraAdapterConfig,
                  weights: WeightFile | None, arch: BaseArchitecture | None, folder: Path,
                  spec: str | None) -> None:
    """Replace the prediction by a replay when asked, or when the predictor answered `unknown`."""
    if replay is False or arch is None:
        return
    if replay is None and (predicted != "unknown" or cfg.foreign_format):
        return
    from loravet.checks.replay import replay_available, replay_into_report

    if not replay_available():
        if replay:
            report.extra["replay"] = {"skipped": "torch, transformers and peft are needed to replay "
                                                 "(pip install 'loravet[eval]')"}
        return
    if weights is None and _weights_present(folder):
        return  # a weight file loravet cannot read safely is never handed to PEFT: the prediction stands
    if weights is not None and weights.reader is None:
        return  # header only (an hf: adapter): no values to hand to PEFT, the prediction and its reason stand
    _, labels = _head_hint(cfg, weights)
    # The base's own head when it has one (a local or hub *ForSequenceClassification): a file head of another
    # size is PEFT's size mismatch there, not a head built to fit the file.
    heads = [m for m in map(arch.module, ("score", "classifier", "classifier.out_proj"))
             if m is not None and m.kind == "linear" and m.out_features]
    if heads:
        labels = heads[0].out_features or labels
    seq_cls = (cfg.task_type or "").upper() == "SEQ_CLS"
    base_config = arch.config
    if seq_cls and not heads and base_config.get("architectures"):
        # no head in the resolved base: the predictor took the folder as saved (e.g. a *ForCausalLM); the
        # replay builds that class too, not AutoModelForSequenceClassification
        base_config = {**base_config, "_loravet_as_saved": True}
    base_dir = Path(spec) if spec and arch.source == "local" and Path(spec).is_dir() else None
    replay_into_report(report, folder, weights, cfg.raw, base_config, arch.name, labels if seq_cls else None,
                       base_dir)


def _weights_present(folder: Path) -> bool:
    return (folder / _SAFE).exists() or (folder / _BIN).exists()


def _update_stats(pred: LoadPrediction, values: dict[str, Any]) -> dict[str, Any]:
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
        "module": [st.module for st in stats], "rank": [st.rank for st in stats],
        "scaling": [st.scaling for st in stats], "norm": [clean(st.norm, 6) for st in stats],
        "effective_rank": [clean(st.effective_rank, 3) for st in stats]}
    skipped = sum(st.skipped for st in stats)
    if skipped:
        out["skipped"] = (f"{skipped} of {len(stats)} module(s) not computed: their eigenproblems are over the "
                          "cost budget (norm and effective_rank null)")
    return out

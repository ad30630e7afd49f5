"""Provenance: the training artifacts beside the adapter, whether the names agree about the base, whether there
is training evidence, and whether k-fold siblings given together were trained alike on different weights."""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

from loravet.adapter.artifacts import EVIDENCE_FILES, find_artifacts
from loravet.adapter.limits import MAX_README_BYTES, read_prefix
from loravet.base.catalog import parse_model_name
from loravet.context import AdapterContext
from loravet.findings import Finding, Severity, make_finding
from loravet.results import AdapterReport, BaseVariantHint
from loravet.sources.resolve import AdapterSource
from loravet.textnorm import normalise_text

__all__ = [
    "artifacts_stage",
    "kfold_groups",
    "kfold_siblings_stage",
    "normalise_text",  # re-exported: it lives in loravet.textnorm
    "provenance_stage",
    "readme_metadata",
]


def readme_metadata(folder: Path) -> tuple[dict[str, list[str]], str]:
    """The model card's YAML metadata (every scalar or list of scalars as a list of strings) and its body."""
    path = folder / "README.md"
    if not path.is_file():
        return {}, ""
    try:  # streamed and capped: a sparse 1 GiB README is read up to the cap, a FIFO or device not at all
        text = read_prefix(path, MAX_README_BYTES, folder)[0].decode("utf-8", errors="replace")
    except OSError:  # FileRefused included: a link leaving the folder, not a regular file
        return {}, ""
    if not re.match(r"^---\s*\n", text):
        return {}, text
    # huggingface_hub's own model-card parser (YAML, quotes, comments, lists), imported only for a card with
    # front matter: it costs ~0.2 s of imports
    with warnings.catch_warnings():  # its tqdm.auto import warns in a notebook without ipywidgets
        warnings.simplefilter("ignore")
        from huggingface_hub.repocard import RepoCard

    try:
        card = RepoCard(text, ignore_metadata_errors=False)
        data: dict[str, Any] = card.data.to_dict()  # type: ignore[no-untyped-call]
        body = card.text
    except Exception:  # invalid YAML, a non-mapping block, an unsafe tag: no metadata, the text as it is
        return {}, text
    meta: dict[str, list[str]] = {}
    for key, value in data.items():
        values = value if isinstance(value, list) else [value]
        meta[str(key)] = [str(v) for v in values if v is not None and not isinstance(v, dict | list)]
    return meta, body


def _training_details_in_readme(body: str) -> bool:
    m = re.search(r"^#+\s*Training (Details|Procedure|Data|Hyperparameters)\s*$(.*?)(?=^#\s|\Z)", body, re.M | re.S)
    if not m:
        return bool(re.search(r"learning[_ ]rate\s*[:=]\s*[\d.e-]+", body, re.I))
    section = re.sub(r"\[More Information Needed\]|#+.*", "", m.group(2))
    return len(section.strip()) > 40


def _named_sources(report: AdapterReport, source: AdapterSource, meta: dict[str, list[str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    path = Path(report.path)
    out.append(("folder name", path.name))
    if source.kind == "zip":
        out.append(("zip name", str(source.default_name)))
    if source.hub_id:
        out.append(("hub id", source.hub_id))
    else:
        out.append(("parent folder", path.parent.name))
    if report.base_model_name_or_path:
        out.append(("config base_model_name_or_path", report.base_model_name_or_path))
    for value in meta.get("base_model", [])[:3]:
        out.append(("model card base_model", value))
    for value in meta.get("datasets", [])[:5]:
        out.append(("model card datasets", value))
    return out


def artifacts_stage(ctx: AdapterContext) -> list[Finding]:
    """The training artifacts beside the adapter (splits, trainer state), read bounded; never a file the
    security stage refused."""
    ctx.artifacts = find_artifacts(ctx.folder, skip=ctx.refused_files)
    ctx.report.artifacts = [a.to_json() for a in ctx.artifacts]
    return []


def provenance_stage(ctx: AdapterContext) -> list[Finding]:
    """Do the names agree about the base, is a quantized variant hinted, is there training evidence."""
    meta, body = readme_metadata(ctx.folder)
    named = _named_sources(ctx.report, ctx.source, meta)
    return [*_name_conflicts(ctx.report, named), *_variant_hint(ctx.report, named), *_training_evidence(ctx, body)]


def _name_conflicts(report: AdapterReport, named: list[tuple[str, str]]) -> list[Finding]:
    """base-name-conflict: family/size tokens must agree with the config's base (else the card's)."""
    tokens = [(where, text, *parse_model_name(text)[:2]) for where, text in named]
    config_tokens = next(((f, s) for w, _, f, s in tokens if w == "config base_model_name_or_path"), (None, None))
    card = next(((f, s) for w, _, f, s in tokens if w == "model card base_model"), (None, None))
    reference = config_tokens if any(config_tokens) else card
    if not any(reference):
        return []
    conflicts: list[dict[str, str]] = []
    ref_family, ref_size = reference
    for where, text, family, size in tokens:
        if where == "config base_model_name_or_path":
            continue
        if (size and ref_size and size != ref_size) or (family and ref_family and family != ref_family):
            conflicts.append({"where": where, "text": text, "family": family or "", "size": size or ""})
    if not conflicts:
        return []
    c = conflicts[0]
    token = c["size"] or c["family"]
    return [
        make_finding(
            "base-name-conflict",
            f"{c['where']} {c['text']!r} says {token!r} but the config names {report.base_model_name_or_path or card}",
            conflicts=conflicts,
            config=report.base_model_name_or_path,
        )
    ]


def _variant_hint(report: AdapterReport, named: list[tuple[str, str]]) -> list[Finding]:
    """base-variant-vague: a generic base in the config, a quantized variant named elsewhere."""
    if not report.base_model_name_or_path or parse_model_name(report.base_model_name_or_path)[2] is not None:
        return []
    hinted = [(w, t) for w, t in named if parse_model_name(t)[2] and w != "config base_model_name_or_path"]
    if not hinted:
        return []
    report.base_variant_hint = BaseVariantHint(where=hinted[0][0], text=hinted[0][1])
    return [
        make_finding(
            "base-variant-vague",
            f"the config names {report.base_model_name_or_path} but {hinted[0][0]} "
            f"{hinted[0][1]!r} points to a quantized variant",
            where=hinted[0][0],
            text=hinted[0][1],
        )
    ]


def _training_evidence(ctx: AdapterContext, body: str) -> list[Finding]:
    """no-training-evidence: no split, trainer state, training args, logs or model card training details."""
    folder = ctx.folder
    files = {p.name.lower() for p in folder.iterdir()} if folder.is_dir() else set()
    has_logs = any(folder.glob("runs")) or any(f.endswith(".log") for f in files)
    evidence = [
        a.file for a in ctx.artifacts if a.kind in ("train", "val", "test", "trainer_state", "training_args")
    ] + [f for f in EVIDENCE_FILES if f in files]
    ctx.report.training_evidence = sorted(set(evidence))
    if not evidence and not has_logs and not _training_details_in_readme(body):
        return [
            make_finding(
                "no-training-evidence",
                "no train/validation artifacts, trainer_state.json, training_args.bin, logs, or "
                "model card training details",
                files=sorted(files)[:20],
            )
        ]
    return []


def _weights_digest(path: str | None, full: bool = False) -> str | None:
    """A sample digest (size, first and last 64 KiB) or, with `full`, the whole file's."""
    if path is None:
        return None
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            if full:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            else:
                size = fh.seek(0, 2)
                h.update(str(size).encode())
                fh.seek(0)
                h.update(fh.read(1 << 16))
                fh.seek(max(0, size - (1 << 16)))
                h.update(fh.read(1 << 16))
    except OSError:
        return None
    return h.hexdigest()


def kfold_groups(contexts: list[AdapterContext]) -> list[list[AdapterContext]]:
    """k-fold siblings given together (two or more folds of one stem), in argument order."""
    groups: dict[str, list[AdapterContext]] = {}
    for c in contexts:
        if c.report.kfold is not None:
            stem = re.sub(r"[-_.]?fold[-_]?\d+$", "", c.report.name.split("/")[-1], flags=re.I).lower()
            groups.setdefault(stem, []).append(c)
    return [folds for folds in groups.values() if len(folds) >= 2]


def kfold_siblings_stage(contexts: list[AdapterContext]) -> list[tuple[str, Finding]]:
    """k-fold siblings given together: trained alike (kfold-inconsistent), not the same weights (fold-overlap).
    Each finding with the name of the adapter it is about."""
    out: list[tuple[str, Finding]] = []
    for folds in kfold_groups(contexts):
        out += _inconsistent_siblings([c.report for c in folds])
        out += _identical_weights(folds)
    return out


def _inconsistent_siblings(folds: list[AdapterReport]) -> list[tuple[str, Finding]]:
    """Siblings trained alike: same rank, alpha, targets, dropout and named base."""

    def signature(r: AdapterReport) -> tuple[Any, ...]:
        t = r.target_modules
        return (
            r.r,
            r.lora_alpha,
            tuple(sorted(t)) if isinstance(t, list) else t,
            r.lora_dropout,
            r.base_model_name_or_path,
        )

    sigs: dict[tuple[Any, ...], list[str]] = {}
    for r in folds:
        sigs.setdefault(signature(r), []).append(r.name)
    if len(sigs) <= 1:
        return []
    majority = max(sigs.values(), key=len)
    return [
        (
            r.name,
            make_finding(
                "kfold-inconsistent",
                f"{r.name} differs from its siblings {', '.join(majority)} in rank, alpha, targets, dropout or base",
                this={
                    "r": r.r,
                    "lora_alpha": r.lora_alpha,
                    "target_modules": r.target_modules,
                    "lora_dropout": r.lora_dropout,
                    "base": r.base_model_name_or_path,
                },
                siblings=majority,
            ),
        )
        for r in folds
        if r.name not in majority
    ]


def _identical_weights(folds: list[AdapterContext]) -> list[tuple[str, Finding]]:
    """Cheap sample digests first; the whole file is hashed only when two samples collide."""
    samples = {c.report.name: _weights_digest(c.weights_path) for c in folds}
    counts: dict[str | None, int] = {}
    for v in samples.values():
        counts[v] = counts.get(v, 0) + 1
    digests = {
        c.report.name: _weights_digest(c.weights_path, full=True)
        for c in folds
        if samples[c.report.name] is not None and counts[samples[c.report.name]] > 1
    }
    by_digest: dict[str, list[str]] = {}
    for name, dig in digests.items():
        if dig:
            by_digest.setdefault(dig, []).append(name)
    out: list[tuple[str, Finding]] = []
    for names in by_digest.values():
        if len(names) > 1:
            out += [
                (
                    c.report.name,
                    make_finding(
                        "fold-overlap",
                        f"identical weights in k-fold siblings {', '.join(names)}",
                        severity=Severity.HIGH,
                        identical_weights=names,
                    ),
                )
                for c in folds
                if c.report.name in names
            ]
    return out

"""Provenance: do the names agree, is there training evidence, do k-fold siblings hold up."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
from pathlib import Path
from typing import Any

from loravet.adapter.artifacts import EVIDENCE_FILES, Artifact, find_artifacts
from loravet.adapter.limits import MAX_README_BYTES, read_prefix
from loravet.base.catalog import parse_model_name
from loravet.findings import Severity, make_finding
from loravet.results import AdapterReport

__all__ = ["cross_adapter_findings", "normalise_text", "provenance_findings", "readme_metadata"]


def normalise_text(text: str) -> str:
    """SPEC's "same row": Unicode NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def readme_metadata(folder: Path) -> tuple[dict[str, Any], str]:
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
    meta: dict[str, Any] = {}
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


def _named_sources(report: AdapterReport, source: Any, meta: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    path = Path(report.path)
    out.append(("folder name", path.name))
    if source is not None and getattr(source, "kind", "") == "zip":
        out.append(("zip name", str(source.default_name)))
    if source is not None and getattr(source, "hub_id", None):
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


def provenance_findings(report: AdapterReport, details: dict[str, Any]) -> None:
    folder = Path(report.path)
    meta, body = readme_metadata(folder)
    from loravet.checks.pickles import pickle_findings

    scans = pickle_findings(report, folder)
    refused = {s.file for s in scans if s.worst != "allowed" or s.errors or s.incomplete}
    artifacts: list[Artifact] = details.get("artifacts") or find_artifacts(folder, skip=refused)
    details["artifacts"] = artifacts
    report.artifacts = [a.to_json() for a in artifacts]

    # --- base-name-conflict: family/size tokens must agree with the config's base
    named = _named_sources(report, details.get("source"), meta)
    tokens = [(where, text, *parse_model_name(text)[:2]) for where, text in named]
    config_tokens = next(((f, s) for w, _, f, s in tokens if w == "config base_model_name_or_path"), (None, None))
    card = next(((f, s) for w, _, f, s in tokens if w == "model card base_model"), (None, None))
    reference = config_tokens if any(config_tokens) else card
    conflicts: list[dict[str, str]] = []
    if any(reference):
        ref_family, ref_size = reference
        for where, text, family, size in tokens:
            if where == "config base_model_name_or_path":
                continue
            if (size and ref_size and size != ref_size) or (family and ref_family and family != ref_family):
                conflicts.append({"where": where, "text": text, "family": family or "", "size": size or ""})
        if conflicts:
            c = conflicts[0]
            token = c["size"] or c["family"]
            report.add(make_finding(
                "base-name-conflict",
                f"{c['where']} {c['text']!r} says {token!r} but the config names "
                f"{report.base_model_name_or_path or card}",
                conflicts=conflicts, config=report.base_model_name_or_path))

    # --- base variant vagueness: generic base in config, quantized variant named elsewhere
    if report.base_model_name_or_path:
        _, _, cfg_quant = parse_model_name(report.base_model_name_or_path)
        if cfg_quant is None:
            hinted = [(w, t) for w, t in named if parse_model_name(t)[2] and w != "config base_model_name_or_path"]
            if hinted:
                report.extra["base_variant_hint"] = {"where": hinted[0][0], "text": hinted[0][1]}
                report.add(make_finding(
                    "base-variant-vague", f"the config names {report.base_model_name_or_path} but {hinted[0][0]} "
                    f"{hinted[0][1]!r} points to a quantized variant", where=hinted[0][0], text=hinted[0][1]))

    # --- training evidence
    files = {p.name.lower() for p in folder.iterdir()} if folder.is_dir() else set()
    has_logs = any(folder.glob("runs")) or any(f.endswith(".log") for f in files)
    evidence = ([a.file for a in artifacts if a.kind in ("train", "val", "test", "trainer_state", "training_args")]
                + [f for f in EVIDENCE_FILES if f in files])
    if not evidence and not has_logs and not _training_details_in_readme(body):
        report.add(make_finding("no-training-evidence",
                                "no train/validation artifacts, trainer_state.json, training_args.bin, logs, or "
                                "model card training details", files=sorted(files)[:20]))
    report.extra["training_evidence"] = sorted(set(evidence))
    from loravet.checks.leakage import split_overlap_findings
    from loravet.checks.serving import serving_findings

    split_overlap_findings(report, artifacts)
    serving_findings(report, details.get("config"), (report.base or {}).get("quantization"))


def _weights_digest(details: dict[str, Any], full: bool = False) -> str | None:
    """A sample digest (size, first and last 64 KiB) or, with `full`, the whole file's."""
    path = details.get("weights_path")
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


def cross_adapter_findings(reports: list[AdapterReport], details: list[dict[str, Any]]) -> None:
    """k-fold siblings given together: identical weights or identical splits."""
    if len(details) != len(reports):
        return
    groups: dict[str, list[tuple[AdapterReport, dict[str, Any]]]] = {}
    for r, d in zip(reports, details, strict=True):
        if r.kfold is not None:
            stem = re.sub(r"[-_.]?fold[-_]?\d+$", "", r.name.split("/")[-1], flags=re.I).lower()
            groups.setdefault(stem, []).append((r, d))
    for folds in groups.values():
        if len(folds) >= 2:
            _fold_set_findings(folds)


def _fold_set_findings(folds: list[tuple[AdapterReport, dict[str, Any]]]) -> None:
    from loravet.checks.leakage import fold_findings

    fold_findings([(r, d.get("artifacts") or []) for r, d in folds])
    # siblings trained alike: same rank, alpha, targets, dropout and named base
    def signature(r: AdapterReport) -> tuple[Any, ...]:
        t = r.target_modules
        return (r.r, r.lora_alpha, tuple(sorted(t)) if isinstance(t, list) else t, r.lora_dropout,
                r.base_model_name_or_path)

    sigs: dict[tuple[Any, ...], list[str]] = {}
    for r, _ in folds:
        sigs.setdefault(signature(r), []).append(r.name)
    if len(sigs) > 1:
        majority = max(sigs.values(), key=len)
        for r, _ in folds:
            if r.name not in majority:
                r.add(make_finding(
                    "kfold-inconsistent", f"{r.name} differs from its siblings {', '.join(majority)} in rank, alpha, "
                    "targets, dropout or base", this={"r": r.r, "lora_alpha": r.lora_alpha,
                                                      "target_modules": r.target_modules,
                                                      "lora_dropout": r.lora_dropout,
                                                      "base": r.base_model_name_or_path}, siblings=majority))
    # cheap sample digests first; the whole file is hashed only when two samples collide
    samples = {r.name: _weights_digest(d) for r, d in folds}
    counts: dict[str | None, int] = {}
    for v in samples.values():
        counts[v] = counts.get(v, 0) + 1
    digests = {r.name: _weights_digest(d, full=True) for r, d in folds
               if samples[r.name] is not None and counts[samples[r.name]] > 1}
    by_digest: dict[str, list[str]] = {}
    for name, dig in digests.items():
        if dig:
            by_digest.setdefault(dig, []).append(name)
    for names in by_digest.values():
        if len(names) > 1:
            for r, _ in folds:
                if r.name in names:
                    r.add(make_finding("fold-overlap", f"identical weights in k-fold siblings {', '.join(names)}",
                                       severity=Severity.HIGH, identical_weights=names))

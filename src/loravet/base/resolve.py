"""BASE arguments -> BaseArchitecture, never loading a weight.

Order: a local model folder (config.json + safetensors headers), an `hf:` id or plain hub id found in
the huggingface_hub cache (config.json + headers; online, `get_safetensors_metadata`), then the
built-in catalog. Model types without a rule go to transformers' meta device when it is installed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loravet.adapter.config import ConfigError, read_json_file
from loravet.adapter.safetensors_file import SafetensorsError, read_safetensors
from loravet.adapter.tensors import TensorInfo
from loravet.base.architecture import LINEAR, BaseArchitecture, ModuleSpec
from loravet.base.catalog import catalog_architecture, match_catalog, parse_model_name
from loravet.base.rules import RuleError, architecture_from_config
from loravet.sources.hub import hub_offline

__all__ = ["BaseResolution", "resolve_base"]


@dataclass
class BaseResolution:
    architecture: BaseArchitecture | None
    reason: str  # how it was resolved, or why not
    warning: str | None = None  # hub metadata that could not be had, and what was assumed instead


def _headers_of_folder(folder: Path) -> dict[str, TensorInfo]:
    out: dict[str, TensorInfo] = {}
    files = sorted(folder.glob("*.safetensors"))
    for f in files[:64]:
        try:
            out.update(read_safetensors(f).tensors)
        except SafetensorsError:
            continue
    return out


def _apply_headers(arch: BaseArchitecture, headers: dict[str, TensorInfo], bits: int | None) -> BaseArchitecture:
    """Replace rule shapes by the exact header shapes; map GPTQ/AWQ packed weights to logical shapes."""
    if not headers:
        return arch
    new_modules: list[ModuleSpec] = []
    changed = 0
    for m in arch.modules:
        w = headers.get(f"{m.name}.weight")
        if m.kind == LINEAR and w is None and f"{m.name}.qweight" in headers:
            q = headers[f"{m.name}.qweight"]
            pack = 32 // (bits or 4)
            if arch.quantization == "awq":
                in_f, out_f = q.shape[0], q.shape[1] * pack
            else:  # gptq: qweight [in / pack, out]
                in_f, out_f = q.shape[0] * pack, q.shape[1]
            params = tuple((k[len(m.name) + 1:], headers[k].shape) for k in headers
                           if k.startswith(m.name + ".") and "." not in k[len(m.name) + 1:])
            new_modules.append(ModuleSpec(m.name, m.kind, "QuantLinear", in_f, out_f, params, quantized=True))
            changed += 1
            continue
        if w is not None and m.params and dict(m.params).get("weight") != w.shape:
            params = tuple((p, headers[f"{m.name}.{p}"].shape if f"{m.name}.{p}" in headers else s)
                           for p, s in m.params)
            if m.kind == LINEAR and len(w.shape) == 2:
                new_modules.append(ModuleSpec(m.name, m.kind, m.type_name, w.shape[1], w.shape[0], params))
            else:
                new_modules.append(ModuleSpec(m.name, m.kind, m.type_name, m.in_features, m.out_features, params))
            changed += 1
            continue
        new_modules.append(m)
    arch.modules = new_modules
    arch._by_name = None
    if changed:
        arch.notes.append(f"{changed} module shapes taken from the safetensors headers")
    return arch


def _architecture_from_config_dict(cfg: dict[str, Any], name: str, source: str,
                                   headers: dict[str, TensorInfo], head: str | None = None) -> BaseArchitecture:
    if head == "seq_cls" and not str((cfg.get("architectures") or [""])[0]).endswith("ForSequenceClassification"):
        cfg = {**cfg, "architectures": []}
    try:
        arch = architecture_from_config(cfg, name, source, head=head)
    except RuleError:
        from loravet.base.meta_fallback import architecture_from_meta

        arch = architecture_from_meta(cfg, name, source)
    q = cfg.get("quantization_config")
    bits = q.get("bits") if isinstance(q, dict) and isinstance(q.get("bits"), int) else None
    return _apply_headers(arch, headers, bits)


def _from_folder(folder: Path, name: str, head: str | None = None) -> BaseArchitecture:
    cfg_path = folder / "config.json"
    try:
        cfg = read_json_file(cfg_path)
    except ConfigError as exc:
        raise RuleError(str(exc)) from None
    if not isinstance(cfg, dict):
        raise RuleError(f"{cfg_path} is not a JSON object")
    arch = _architecture_from_config_dict(cfg, name, "local", _headers_of_folder(folder), head)
    if any(folder.glob("*.safetensors")):
        arch.weights_folder = str(folder.resolve())
    origin = cfg.get("_name_or_path")
    if isinstance(origin, str) and _HUB_ID.match(origin):
        arch.notes.append(f"local copy of {origin}")
        arch.config = {**arch.config, "_loravet_origin": origin}
    return arch


def _hub_cache_may_hold(repo: str) -> bool:
    """False when no huggingface_hub cache folder can hold `repo`: then the hub client (~0.25 s of imports on a
    cold start) is not needed to know that nothing is cached. Any doubt answers True."""
    env = os.environ
    candidates = [env.get("HF_HUB_CACHE"), env.get("HUGGINGFACE_HUB_CACHE"),
                  os.path.join(env["HF_HOME"], "hub") if env.get("HF_HOME") else None,
                  os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface", "hub")]
    folder = "models--" + repo.replace("/", "--")
    return any(c and os.path.isdir(os.path.join(os.path.expanduser(c), folder)) for c in candidates)


def _from_hub(repo: str, revision: str | None, network: bool, head: str | None) -> BaseArchitecture | None:
    if not network and not _hub_cache_may_hold(repo):
        return None
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    cached = try_to_load_from_cache(repo, "config.json", revision=revision)
    cfg_file: str | None = cached if isinstance(cached, str) else None
    if cfg_file is None and network and not hub_offline():
        try:
            cfg_file = hf_hub_download(repo, "config.json", revision=revision)
        except Exception:
            cfg_file = None
    if cfg_file is None:
        return None
    try:
        cfg = json.loads(Path(cfg_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict):
        return None
    folder = Path(cfg_file).parent
    headers = _headers_of_folder(folder)
    if not headers:  # headers an earlier online run read by range (loravet.sources.remote)
        from loravet.sources.remote import cached_headers

        headers = cached_headers(repo, folder.name)
    try:
        arch = _architecture_from_config_dict(cfg, repo, "hub", headers, head)
    except (RuleError, ImportError):
        return None
    if any(folder.glob("*.safetensors")):
        arch.weights_folder = str(folder)
    return arch


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


_CACHE: dict[tuple[object, ...], BaseResolution] = {}


def _cache_key(spec: str, head: str | None, num_labels: int) -> tuple[object, ...]:
    """Same spec, same files on disk (mtimes), same head: same answer within a process."""
    path = Path(spec[3:] if spec.startswith("hf:") else spec).expanduser()
    stamp: tuple[object, ...] = ()
    if path.is_dir():
        try:
            stamp = tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in path.iterdir()
                                 if p.suffix in (".json", ".safetensors")))
        except OSError:
            stamp = ("unreadable",)
    return (spec, head, num_labels, stamp)


def resolve_base(spec: str | None, *, head: str | None = None, num_labels: int = 2,
                 local_head: bool = False) -> BaseResolution:
    """Cached :func:`_resolve_base` (checking 1,000 adapters against one base reads its headers once)."""
    if not spec:
        return _resolve_base(spec, head=head, num_labels=num_labels, local_head=local_head)
    key = (*_cache_key(spec, head, num_labels), local_head)
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) > 64:
            _CACHE.clear()
        hit = _CACHE[key] = _resolve_base(spec, head=head, num_labels=num_labels, local_head=local_head)
    return hit


def _resolve_base(spec: str | None, *, head: str | None = None, num_labels: int = 2,
                  local_head: bool = False) -> BaseResolution:
    """Resolve a base name, path or hub id; None with the reason when it cannot.

    A local folder is taken as saved (its `architectures` decides the head) unless `local_head`, as when
    eval loads it for the adapter's task. A base given by name (hub or catalog) is loaded the way the
    adapter's task needs: `head="seq_cls"` gives it a `score` head with `num_labels` outputs, as
    AutoModelForSequenceClassification would."""
    if not spec:
        return BaseResolution(None, "the config names no base_model_name_or_path and no --base was given")
    text = spec.strip()
    revision = None
    if text.startswith("hf:"):
        text = text[3:]
        if "@" in text:
            text, revision = text.split("@", 1)
    path = Path(text).expanduser()
    try:
        if path.is_dir() and (path / "config.json").exists():
            arch = _from_folder(path, str(path.resolve()), head if local_head else None)
            return BaseResolution(arch, f"local folder {path}")
    except (RuleError, ImportError, OSError) as exc:
        return BaseResolution(None, f"local folder {path}: {exc}")
    explicit_hub = spec.strip().startswith("hf:")
    if _HUB_ID.match(text):
        cached = _from_hub(text, revision, network=False, head=head)
        if cached is not None:
            return BaseResolution(cached, f"hub {text} (config.json from the huggingface_hub cache)")
    match = match_catalog(text)
    entry = match[0] if match else None
    if match is not None and not explicit_hub:
        entry, kind = match
        display = text if _HUB_ID.match(text) and kind != "guess" else entry.name
        arch = catalog_architecture(entry, display, head or "causal_lm", num_labels)
        if kind == "guess":
            quant = parse_model_name(text)[2] or arch.quantization
            arch = BaseArchitecture(**{**arch.__dict__, "guessed_from": text, "_by_name": None, "quantization": quant,
                                       "notes": [*arch.notes, f"guessed by family and size as {entry.name}"]})
            return BaseResolution(arch, f"guess: {text!r} is not in the catalog; by family and size it would be "
                                  f"{entry.name}")
        how = "exact catalog entry" if text.lower() == entry.name.lower() else f"catalog entry {entry.name}"
        return BaseResolution(arch, how)
    if _HUB_ID.match(text) and explicit_hub:
        from loravet.sources.remote import base_from_hub

        fetched, problem = base_from_hub(text, revision, head, _architecture_from_config_dict)
        if fetched is not None:
            return BaseResolution(fetched, f"hub {text}", problem and
                                  f"{problem}; assumed the shapes config.json implies, without safetensors headers")
        if entry is not None:
            return BaseResolution(catalog_architecture(entry, text, head or "causal_lm", num_labels),
                                  f"catalog entry {entry.name} (hub metadata unavailable)",
                                  f"{problem}; assumed the built-in catalog's shapes for {entry.name}")
        return BaseResolution(None, problem or f"{spec!r}: no usable base metadata on the hub")
    if path.is_dir():  # a folder was meant: say what it lacks rather than that it is not a folder
        return BaseResolution(None, f"{spec!r} is a folder without config.json (a model folder has one)")
    return BaseResolution(None, f"{spec!r} is not a local model folder, a cached hub model, or a catalog entry")

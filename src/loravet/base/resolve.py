"""BASE arguments -> BaseArchitecture, never loading a weight.

Order: a local model folder (config.json + safetensors headers); an `hf:` id or plain hub id found in the
huggingface_hub cache (config.json + headers); a catalog entry (for a plain name that is not an exact
catalog release: only when the hub cannot give it); a hub id fetched online, header-only (config.json and
safetensors headers by range, loravet.sources.remote). The same order whether the user typed the base
(`--base`) or the adapter's config names it. What was assumed when the hub could not answer is said in
`BaseResolution.warning`. Model types without a rule go to transformers' meta device when it is installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loravet.adapter.config import ConfigError, read_json_file
from loravet.adapter.safetensors_file import SafetensorsError, read_safetensors
from loravet.adapter.tensors import TensorInfo
from loravet.base.architecture import LINEAR, BaseArchitecture, ModuleSpec
from loravet.base.catalog import CatalogEntry, catalog_architecture, match_catalog, parse_model_name
from loravet.base.meta_fallback import architecture_from_meta
from loravet.base.rules import RuleError, architecture_from_config
from loravet.errors import BaseResolutionError, SourceError
from loravet.sources.hub import may_be_cached, offline, parse_hub_spec

__all__ = ["BaseResolution", "require_base", "resolve_base"]


@dataclass
class BaseResolution:
    architecture: BaseArchitecture | None
    reason: str  # how it was resolved, or why not
    warning: str | None = None  # hub metadata that could not be had, and what was assumed instead
    fetch: dict[str, Any] | None = None  # a hub base: its commit and what this process fetched of it

    def report_fields(self) -> dict[str, Any]:
        """Added to the report's `base`: where a hub base came from and what fetching it cost."""
        return {"fetch": self.fetch} if self.fetch is not None else {}


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
            params = tuple(
                (k[len(m.name) + 1 :], headers[k].shape)
                for k in headers
                if k.startswith(m.name + ".") and "." not in k[len(m.name) + 1 :]
            )
            new_modules.append(ModuleSpec(m.name, m.kind, "QuantLinear", in_f, out_f, params, quantized=True))
            changed += 1
            continue
        if w is not None and m.params and dict(m.params).get("weight") != w.shape:
            params = tuple(
                (p, headers[f"{m.name}.{p}"].shape if f"{m.name}.{p}" in headers else s) for p, s in m.params
            )
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


def _architecture_from_config_dict(
    cfg: dict[str, Any], name: str, source: str, headers: dict[str, TensorInfo], head: str | None = None
) -> BaseArchitecture:
    if head == "seq_cls" and not str((cfg.get("architectures") or [""])[0]).endswith("ForSequenceClassification"):
        cfg = {**cfg, "architectures": []}
    try:
        arch = architecture_from_config(cfg, name, source, head=head)
    except RuleError:
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


def _from_cache(repo: str, revision: str | None, head: str | None) -> BaseResolution | None:
    """A hub base whose config.json is in the huggingface_hub cache (no request); None when it is not."""
    if not may_be_cached(repo):  # no cache folder for it: the hub client's imports are not needed to know
        return None
    # lazy (cold start, #12): the hub source loads only for a base that is a hub id in the cache or online
    from loravet.sources.hub_fetch import FetchStats, cached_file
    from loravet.sources.remote import cached_headers, read_config

    cfg_file = cached_file(repo, "config.json", revision)
    if cfg_file is None:
        return None
    cfg = read_config(cfg_file, repo)
    if isinstance(cfg, str):
        return None
    folder = cfg_file.parent
    # the weights' own headers when the snapshot holds them, else those an earlier online run read by range
    headers = _headers_of_folder(folder) or cached_headers(repo, folder.name)
    try:
        arch = _architecture_from_config_dict(cfg, repo, "hub", headers, head)
    except (RuleError, ImportError):
        return None
    if any(folder.glob("*.safetensors")):
        arch.weights_folder = str(folder)
    return BaseResolution(
        arch,
        f"hub {repo} (config.json from the huggingface_hub cache)",
        fetch={"commit": folder.name, **FetchStats(cached=["config.json"]).to_json()},
    )


_NOTHING_ASSUMED = "; nothing was assumed instead"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

_MATCH_WORDS = {
    "exact": "",
    "alias": " (a derivative the catalog lists with identical shapes)",
    "guess": " (a guess by family and size)",
}


def _from_catalog(text: str, entry: CatalogEntry, kind: str, head: str | None, num_labels: int) -> BaseResolution:
    """The built-in catalog's entry for `text`: exact, an alias, or a family-and-size guess (marked as one)."""
    display = text if _HUB_ID.match(text) and kind != "guess" else entry.name
    arch = catalog_architecture(entry, display, head or "causal_lm", num_labels)
    if kind == "guess":
        quant = parse_model_name(text)[2] or arch.quantization
        arch = BaseArchitecture(
            **{
                **arch.__dict__,
                "guessed_from": text,
                "_by_name": None,
                "quantization": quant,
                "notes": [*arch.notes, f"guessed by family and size as {entry.name}"],
            }
        )
        return BaseResolution(
            arch, f"guess: {text!r} is not in the catalog; by family and size it would be {entry.name}"
        )
    how = "exact catalog entry" if text.lower() == entry.name.lower() else f"catalog entry {entry.name}"
    return BaseResolution(arch, how)


def _from_hub(
    text: str,
    revision: str | None,
    label: str,
    explicit: bool,
    head: str | None,
    num_labels: int,
    match: tuple[CatalogEntry, str] | None,
) -> BaseResolution:
    """A hub id fetched online, header-only; when the hub cannot give it, the catalog's match with a warning
    saying so, else no base with the hub's answer as the reason."""
    if offline() and not may_be_cached(text):  # said without importing the hub client
        fetched_problem: str | None = f"{label}: not in the local huggingface_hub cache and HF_HUB_OFFLINE is set"
        arch: BaseArchitecture | None = None
        fetch = None
    else:
        arch, fetched_problem, fetch = _fetch_architecture(text, revision, label, head)
    if arch is not None:
        return BaseResolution(
            arch,
            f"hub {text}",
            fetched_problem
            and (f"{fetched_problem}; assumed the shapes config.json implies, without safetensors headers"),
            fetch,
        )
    problem = fetched_problem or f"{label}: no usable base metadata on the hub"
    if match is not None:
        entry, kind = match
        fallback = _from_catalog(text, entry, kind, head, num_labels)
        fallback.reason += " (hub metadata unavailable)"
        fallback.warning = f"{problem}; assumed the built-in catalog's shapes for {entry.name}{_MATCH_WORDS[kind]}"
        return fallback
    if explicit:
        return BaseResolution(None, problem)
    return BaseResolution(
        None,
        f"{text} is neither a local model folder nor a catalog entry (`loravet bases` lists "
        f"them), and the hub could not give it ({problem.removeprefix(label + ': ')})" + _NOTHING_ASSUMED,
    )


def _fetch_architecture(
    repo: str, revision: str | None, label: str, head: str | None
) -> tuple[BaseArchitecture | None, str | None, dict[str, Any] | None]:
    """(architecture, problem, fetch accounting) of a hub base read header-only."""
    # lazy (cold start, #12): as in _from_cache
    from loravet.sources.remote import fetch_base, read_config

    fetched = fetch_base(repo, revision, label)
    fetch = {"commit": fetched.commit, **fetched.stats.to_json()} if fetched.commit else None
    if fetched.config_path is None:
        return None, fetched.problem, fetch
    cfg = read_config(fetched.config_path, label)
    if isinstance(cfg, str):
        return None, cfg, fetch
    try:
        return _architecture_from_config_dict(cfg, repo, "hub", fetched.headers, head), fetched.problem, fetch
    except (RuleError, ImportError) as exc:  # the rules and the meta-device fallback both refused this config
        return None, f"{label}: no architecture from its config.json ({type(exc).__name__}: {str(exc)[:120]})", fetch


_CACHE: dict[tuple[object, ...], BaseResolution] = {}


def _cache_key(spec: str, head: str | None, num_labels: int) -> tuple[object, ...]:
    """Same spec, same files on disk (mtimes), same head: same answer within a process."""
    path = Path(spec[3:] if spec.startswith("hf:") else spec).expanduser()
    stamp: tuple[object, ...] = ()
    if path.is_dir():
        try:
            stamp = tuple(
                sorted(
                    (p.name, p.stat().st_mtime_ns, p.stat().st_size)
                    for p in path.iterdir()
                    if p.suffix in (".json", ".safetensors")
                )
            )
        except OSError:
            stamp = ("unreadable",)
    return (spec, head, num_labels, stamp)


def resolve_base(
    spec: str | None, *, head: str | None = None, num_labels: int = 2, local_head: bool = False
) -> BaseResolution:
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


def require_base(spec: str) -> None:
    """`--base NAME` as the user typed it: a name that is neither a folder nor an `hf:` id, and that neither the
    catalog nor the hub can give, means the user's base would not be used: BaseResolutionError (exit 2), not
    a finding. A folder (with or without config.json) and an `hf:` id whose metadata cannot be had stay
    findings on each adapter, saying what was assumed."""
    text = spec.strip()
    if text.startswith("hf:"):
        try:
            parse_hub_spec(text)  # a malformed id is a bad argument, like a malformed ADAPTER id
        except SourceError as exc:
            raise BaseResolutionError(f"--base {exc}") from None
        return
    if Path(text).expanduser().is_dir():
        return
    resolution = resolve_base(spec)
    if resolution.architecture is None:
        reason = resolution.reason.removesuffix(_NOTHING_ASSUMED)
        raise BaseResolutionError(f"--base {reason}" if reason.startswith(text) else f"--base {text}: {reason}")


def _resolve_base(
    spec: str | None, *, head: str | None = None, num_labels: int = 2, local_head: bool = False
) -> BaseResolution:
    """Resolve a base name, path or hub id; None with the reason when it cannot.

    A local folder is taken as saved (its `architectures` decides the head) unless `local_head`, as when
    eval loads it for the adapter's task. A base given by name (hub or catalog) is loaded the way the
    adapter's task needs: `head="seq_cls"` gives it a `score` head with `num_labels` outputs, as
    AutoModelForSequenceClassification would."""
    if not spec:
        return BaseResolution(None, "the config names no base_model_name_or_path and no --base was given")
    text = spec.strip()
    explicit_hub = text.startswith("hf:")
    revision = None
    if explicit_hub:
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
    hub_id = _HUB_ID.match(text) is not None
    if hub_id and (cached := _from_cache(text, revision, head)) is not None:
        return cached
    match = match_catalog(text)
    # the catalog answers for its own releases, and for any name the hub could not be asked about
    if match is not None and not explicit_hub and (match[1] == "exact" or not hub_id):
        return _from_catalog(text, match[0], match[1], head, num_labels)
    if hub_id:
        return _from_hub(text, revision, spec.strip() if explicit_hub else text, explicit_hub, head, num_labels, match)
    if path.is_dir():  # a folder was meant: say what it lacks rather than that it is not a folder
        return BaseResolution(None, f"{spec!r} is a folder without config.json (a model folder has one)")
    return BaseResolution(
        None,
        f"{text} is neither a local model folder, nor a hub id (OWNER/NAME), nor a catalog "
        "entry (`loravet bases` lists them)",
    )

"""Which base was this adapter trained on? Told from tensor shapes and layer indices alone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from loravet.adapter.tensors import WeightFile
from loravet.base.architecture import BaseArchitecture
from loravet.base.catalog import CATALOG
from loravet.base.rules import architecture_from_config

__all__ = ["AdapterShape", "Fingerprint", "adapter_shape", "fingerprint"]

_LORA_SUFFIX = re.compile(
    r"\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B|lora_magnitude_vector)(?:\.[^.]+)*$")
_LAYERED = re.compile(r"^(?P<stack>.*?)\.(?P<idx>\d+)\.(?P<rest>.+)$")


@dataclass
class AdapterShape:
    """What the weight file says about the modules it adapts."""

    modules: dict[str, tuple[int | None, int | None, int | None]] = field(default_factory=dict)
    """module path -> (in_features, out_features, rank) as the tensors state them"""
    layers: set[int] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    """module names without the layer path, e.g. 'self_attn.q_proj'"""
    ranks: set[int] = field(default_factory=set)

    @property
    def num_layers(self) -> int | None:
        return max(self.layers) + 1 if self.layers else None


def _strip(key: str) -> str:
    for p in ("base_model.model.", "base_model."):
        if key.startswith(p):
            return key[len(p):]
    return key


def adapter_shape(weights: WeightFile) -> AdapterShape:
    shape = AdapterShape()
    for key, info in weights.tensors.items():
        m = _LORA_SUFFIX.search(key)
        if not m:
            continue
        module = _strip(key[: m.start()])
        kind = m.group(1)
        in_f, out_f, r = shape.modules.get(module, (None, None, None))
        dims = info.shape
        if kind == "lora_A" and len(dims) == 2:
            r, in_f = dims[0], dims[1]
        elif kind == "lora_B" and len(dims) == 2 and key.endswith("weight"):
            # the rank is lora_A's first dim: a block-diagonal B (BD-LoRA) holds only r / nblocks columns
            out_f, r = dims[0], r or dims[1]
        elif kind == "lora_embedding_A" and len(dims) == 2:
            r, in_f = dims
        elif kind == "lora_embedding_B" and len(dims) == 2:
            out_f, r = dims
        shape.modules[module] = (in_f, out_f, r)
        if r:
            shape.ranks.add(r)
        lm = _LAYERED.match(module)
        if lm:
            shape.layers.add(int(lm.group("idx")))
            shape.kinds.add(lm.group("rest"))
        else:
            shape.kinds.add(module)
    return shape


@dataclass
class Fingerprint:
    num_layers: int | None
    hidden_size: int | None
    best_match: str | None
    candidates: list[str]
    fits_named: bool | None = None
    """Whether the shapes fit the base being checked (None when there is none)."""

    def to_json(self) -> dict[str, object]:
        return {"num_layers": self.num_layers, "hidden_size": self.hidden_size, "best_match": self.best_match,
                "candidates": self.candidates}


_TABLES: dict[int, tuple[BaseArchitecture, dict[str, tuple[int | None, int | None]]]] = {}


def _arch_table(arch: BaseArchitecture) -> tuple[dict[str, tuple[int | None, int | None]], int]:
    cached = _TABLES.get(id(arch))
    if cached is not None and cached[0] is arch:
        return cached[1], arch.num_layers
    table: dict[str, tuple[int | None, int | None]] = {}
    for mod in arch.modules:
        if mod.in_features is None:
            continue
        lm = _LAYERED.match(mod.name)
        rest = lm.group("rest") if lm else mod.name
        table.setdefault(rest, (mod.in_features, mod.out_features))
    if len(_TABLES) > 512:
        _TABLES.clear()
    _TABLES[id(arch)] = (arch, table)
    return table, arch.num_layers


@lru_cache(maxsize=1)
def _catalog_tables() -> tuple[tuple[str, dict[str, tuple[int | None, int | None]], int], ...]:
    """Per catalog entry: the shape table of ONE layer (all layers are alike) and the layer count."""
    out = []
    for entry in CATALOG:
        cfg = entry.config()
        cfg["num_hidden_layers"] = 1
        if "n_layer" in cfg:
            cfg["n_layer"] = 1
        table, _ = _arch_table(architecture_from_config(cfg, entry.name, "catalog"))
        out.append((entry.name, dict(table), entry.dims[2]))
    return tuple(out)


def _fits(shape: AdapterShape, arch: BaseArchitecture | None,
          table_layers: tuple[dict[str, tuple[int | None, int | None]], int] | None = None) -> tuple[bool, bool]:
    """(every adapted module's shape fits, the layer count is exactly the base's)."""
    if table_layers is not None:
        table, layers = table_layers
    else:
        assert arch is not None
        table, layers = _arch_table(arch)
    if not shape.modules:
        return False, False
    for module, (in_f, out_f, _) in shape.modules.items():
        lm = _LAYERED.match(module)
        rest = lm.group("rest") if lm else module
        dims = table.get(rest)
        if dims is None:
            return False, False
        if (in_f is not None and in_f != dims[0]) or (out_f is not None and out_f != dims[1]):
            return False, False
    n = shape.num_layers
    if n is not None and n > layers:
        return False, False
    return True, n == layers


def _hidden(shape: AdapterShape) -> int | None:
    for module, (in_f, out_f, _) in shape.modules.items():
        if module.endswith(("q_proj", "query", "c_attn", "qkv_proj", "query_key_value", "gate_proj", "up_proj")):
            return in_f
        if module.endswith(("o_proj", "down_proj", "dense")):
            return out_f
    values = [v[0] for v in shape.modules.values() if v[0]]
    return max(set(values), key=values.count) if values else None


def fingerprint(shape: AdapterShape, named: BaseArchitecture | None,
                named_entry_name: str | None = None) -> Fingerprint:
    exact: list[str] = []
    fitting: list[str] = []
    for name, table, layers in _catalog_tables():
        ok, exact_layers = _fits(shape, None, (table, layers))
        if ok:
            fitting.append(name)
            if exact_layers:
                exact.append(name)
    fits_named: bool | None = None
    named_exact = False
    if named is not None and named.guessed_from is None:
        ok, named_exact = _fits(shape, named)
        fits_named = ok
    elif named is not None:
        named = None  # a base guessed by family and size is no fact to compare the shapes with
    best: str | None = None
    if named is not None and fits_named and (named_exact or not exact):
        best = named_entry_name or named.name
    elif exact:
        best = exact[0]
        if named_entry_name in exact:
            best = named_entry_name
    elif fitting:
        best = fitting[0]
    candidates = exact + [f for f in fitting if f not in exact]
    if best is not None and best not in candidates:
        candidates.insert(0, best)
    return Fingerprint(shape.num_layers, _hidden(shape), best, candidates, fits_named)

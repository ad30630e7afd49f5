"""Predict exactly what `PeftModel.from_pretrained(base, adapter)` does, from metadata alone.

PEFT's tables (default target modules, config fields and defaults, the config validations, init modes) come
from the snapshot generated from the installed peft (`loravet.adapter.peft_tables`, SNAPSHOT_PEFT_VERSION):
a prediction is for that PEFT release. Cases the predictor does not model (other PEFT types, LoRA variants
such as BD-LoRA or KaSA, base-derived init modes, decisions needing base weights it does not have) answer
`unknown` with the reason, never a guess. This mirrors PEFT's own steps:

1. the PeftModel class by task_type (SEQ_CLS / TOKEN_CLS add `classifier` and `score` to
   modules_to_save, QUESTION_ANS adds `qa_outputs`), default target_modules by model type,
   `all-linear` expansion;
2. target matching (`check_target_module_exists`): exclude_modules, modules_to_save guard, a string is
   a full regex match, a list entry matches the module name or a dotted suffix, layers_to_transform /
   layers_pattern; matched modules must be Linear, Embedding or Conv1D;
3. the parameters each LoRA layer creates (lora_A/B, lora_embedding_A/B, lora_B bias, DoRA magnitude)
   with rank_pattern / alpha_pattern (first match wins), and ModulesToSaveWrapper copies;
4. the checkpoint-key remap and `load_state_dict(strict=False)`: which file tensors land (on adapter
   parameters, on modules_to_save copies, or directly on base parameters), which land nowhere, which
   shapes clash (torch raises), and which created parameters get nothing.

From that: `load_outcome` in the SPEC's order unknown, fails, inert, partial, loads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loravet.adapter.config import LoraAdapterConfig
from loravet.adapter.patterns import pattern_match
from loravet.adapter.peft_tables import SNAPSHOT_PEFT_VERSION, config_fields, default_target_modules
from loravet.adapter.tensors import WeightFile
from loravet.base.architecture import CONV1D, EMBEDDING, LINEAR, LORA_WRAPPABLE, BaseArchitecture, ModuleSpec
from loravet.checks.weight_stats import TensorFacts

__all__ = ["SNAPSHOT_PEFT_VERSION", "CreatedModule", "LoadPrediction", "predict_load"]

PREFIX = "base_model.model."
ADAPTER = "default"

# LoraConfig fields whose effect on loading the predictor models. Any other LoRA field set to a value
# other than its default (BD-LoRA, KaSA, aLoRA, trainable tokens, target_parameters, ...) makes the answer
# `unknown`: PEFT builds something the predictor does not describe.
MODELLED_LORA_FIELDS = frozenset({
    "task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision",
    "inference_mode", "r", "target_modules", "exclude_modules", "lora_alpha", "lora_dropout", "fan_in_fan_out",
    "bias", "use_rslora", "modules_to_save", "init_lora_weights", "layers_to_transform", "layers_pattern",
    "rank_pattern", "alpha_pattern", "use_dora", "lora_bias", "megatron_core", "runtime_config",
    # init-time settings of init modes that the predictor answers `unknown` for anyway
    "loftq_config", "eva_config", "corda_config", "lora_ga_config", "qalora_group_size",
})
_UNWRAPPABLE = frozenset({"ModuleDict", "ModuleList", "ParameterDict", "ParameterList"})


def init_mode_is_special(init: str) -> bool:
    """An init_lora_weights string that LoRA's update_layer dispatches to a data- or base-derived
    initialisation (PiSSA, CorDA, OLoRA, MiCA, LoftQ, EVA, orthogonal, LoRA-GA): these initialise from (and
    may rewrite) the base weights on load. Plain True / False / "gaussian" leave B zero or random; any
    other string makes PEFT raise "Unknown initialization". tests/test_peft_tables.py checks every mode of
    the snapshot's LoraConfig annotation is classified here."""
    return init.startswith(("pissa", "corda")) or init.lower() in ("olora", "mica") or init in (
        "loftq", "eva", "orthogonal", "lora_ga")


def _unmodelled_lora_fields(config: LoraAdapterConfig) -> list[str]:
    defaults = config_fields("LORA") or {}
    out: list[str] = []
    for key, value in config.raw.items():
        if key in MODELLED_LORA_FIELDS or key not in defaults:
            continue
        if value is None or value is False or value == {} or value == [] or value == defaults[key]:
            continue
        out.append(key)
    return out


@dataclass
class CreatedModule:
    """A LoRA layer PEFT creates on the base, with the parameters it expects from the file."""

    name: str
    kind: str
    r: int
    alpha: float
    scaling: float
    expected: dict[str, tuple[int, ...]]
    """checkpoint key -> shape"""
    landed: dict[str, str] = field(default_factory=dict)
    """checkpoint key -> file key that landed on it"""


@dataclass
class LoadPrediction:
    outcome: str
    reason: str
    matched: int | None = None
    missing: int | None = None
    unexpected: int | None = None
    shape_mismatch: int | None = None
    created: list[CreatedModule] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    overwritten_base: list[str] = field(default_factory=list)
    modules_to_save: list[str] = field(default_factory=list)
    random_init_modules: list[str] = field(default_factory=list)
    zero_update_modules: list[str] = field(default_factory=list)
    failure: str | None = None
    failure_code: str | None = None
    notes: list[str] = field(default_factory=list)
    peft_version: str = SNAPSHOT_PEFT_VERSION
    """The PEFT release whose behaviour this prediction describes (the snapshot's)."""

    def keys_json(self) -> dict[str, int | None]:
        return {"matched": self.matched, "missing": self.missing, "unexpected": self.unexpected,
                "shape_mismatch": self.shape_mismatch}


def _modules_to_save_for(config: LoraAdapterConfig) -> list[str] | None:
    mts = list(config.modules_to_save) if config.modules_to_save is not None else None
    task = (config.task_type or "").upper()
    extra: list[str] = []
    if task in ("SEQ_CLS", "TOKEN_CLS"):
        extra = ["classifier", "score"]
    elif task == "QUESTION_ANS":
        extra = ["qa_outputs"]
    if extra:
        mts = extra[:] if mts is None else list(dict.fromkeys(mts + extra))
    return mts


def _excluded(config: LoraAdapterConfig, key: str, modules_to_save: list[str] | None) -> bool:
    ex = config.exclude_modules
    if ex:
        if isinstance(ex, str):
            if _fullmatch(ex, key, "exclude_modules"):
                return True
        elif _suffix_in(key, ex):
            return True
    if modules_to_save:
        plain, others = _plain_split(modules_to_save)
        if plain and any(part in plain for part in key.split(".")):  # a plain name: one dotted component of key
            return True
        for m in others:
            try:
                if pattern_match(rf"(^|.*\.){m}($|\..*)", key, field="modules_to_save", source=m):
                    return True
            except re.error:
                continue
    return False


def _fullmatch(pattern: str, key: str, field: str) -> bool:
    try:
        return pattern_match(pattern, key, field=field, full=True) is not None
    except re.error:
        return False


def _suffix_in(key: str, names: list[str]) -> bool:
    """`key in names or any(key.endswith("." + n) for n in names)`, in time linear in the key, not in len(names)
    (300,000 target_modules)."""
    if len(names) < 16:
        return key in names or key.endswith(_dotted(names))  # one C call per module, not a generator
    pool = _as_pool(names)
    if key in pool:
        return True
    return any(key[i + 1:] in pool for i, ch in enumerate(key) if ch == ".")


_name_sets: dict[int, tuple[list[str], frozenset[str]]] = {}
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")
_plain_splits: dict[int, tuple[list[str], frozenset[str], list[str]]] = {}


def _plain_split(names: list[str]) -> tuple[frozenset[str], list[str]]:
    """modules_to_save entries that are plain names (for which `(^|.*\\.)m($|\\..*)` means "one dotted component
    of the key", answered by a set) and the rest (matched as regexes, as PEFT does)."""
    cached = _plain_splits.get(id(names))
    if cached is None or cached[0] is not names:
        if len(_plain_splits) > 64:
            _plain_splits.clear()
        plain = frozenset(n for n in names if _PLAIN_NAME.fullmatch(n))
        cached = _plain_splits[id(names)] = (names, plain, [n for n in names if n not in plain])
    return cached[1], cached[2]


def _ends_with_any(name: str, names: list[str]) -> bool:
    """`any(name.endswith(m) for m in names)` in time linear in len(name)."""
    if len(names) < 16:
        return any(name.endswith(m) for m in names)
    pool = _as_pool(names)
    return any(name[i:] in pool for i in range(len(name) + 1))


_dotted_names: dict[int, tuple[list[str], tuple[str, ...]]] = {}


def _dotted(names: list[str]) -> tuple[str, ...]:
    """`(".n1", ".n2", ...)` for str.endswith, cached per list (the same target_modules for every module)."""
    cached = _dotted_names.get(id(names))
    if cached is None or cached[0] is not names:
        if len(_dotted_names) > 64:
            _dotted_names.clear()
        cached = _dotted_names[id(names)] = (names, tuple(f".{n}" for n in names))
    return cached[1]


def _as_pool(names: list[str]) -> frozenset[str]:
    cached = _name_sets.get(id(names))
    if cached is None or cached[0] is not names:
        if len(_name_sets) > 64:
            _name_sets.clear()
        cached = _name_sets[id(names)] = (names, frozenset(names))
    return cached[1]


def _layer_index(key: str, layers_pattern: list[str] | str | None) -> int | None:
    if not layers_pattern:
        match = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key)
    else:
        patterns = [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern
        match = None
        for pattern in patterns:
            try:
                match = pattern_match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", key, field="layers_pattern",
                                      source=pattern)
            except re.error:
                match = None
            if match is not None:
                break
    return int(match.group("idx")) if match else None


def _targeted(config: LoraAdapterConfig, targets: list[str] | str, key: str) -> bool:
    if isinstance(targets, str):
        return _fullmatch(targets, key, "target_modules")
    if key in (_as_pool(targets) if len(targets) >= 16 else targets):
        return True  # named exactly: PEFT skips the layer filter
    found = _suffix_in(key, targets)
    layers = config.layers_to_transform
    using_layers = layers is not None and (len(layers) != 0 if isinstance(layers, list) else True)
    if using_layers and found:
        idx = _layer_index(key, config.layers_pattern)
        if idx is None:
            return False
        return idx == layers if isinstance(layers, int) else idx in layers  # type: ignore[operator]
    return found


def _pattern_value(patterns: dict[str, Any], key: str, default: Any, field: str = "rank_pattern") -> Any:
    for pat in patterns:
        try:
            if pattern_match(rf"(.*\.)?({pat})$", key, field=field, source=pat):
                return patterns[pat]
        except re.error:
            continue
    return default


def _all_linear(arch: BaseArchitecture, task: str) -> list[str]:
    names = [m.name for m in arch.modules if m.kind in (LINEAR, CONV1D) and m.name]
    exclude: set[str] = set()
    if arch.output_embedding:
        exclude.add(arch.output_embedding)
    elif task == "SEQ_CLS":
        for head in ("score", "classifier"):
            if arch.module(head) is not None:
                exclude.add(head)
                break
    return [n for n in names if n not in exclude]


def _subtree_params(arch: BaseArchitecture, root: str) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for m in arch.modules:
        if m.name == root or m.name.startswith(root + "."):
            rel = m.name[len(root) + 1:] if m.name != root else ""
            for p, shape in m.params:
                out[f"{rel}.{p}" if rel else p] = shape
    return out


def _expected_params(mod: ModuleSpec, r: int, config: LoraAdapterConfig) -> dict[str, tuple[int, ...]]:
    base = PREFIX + mod.name
    in_f, out_f = mod.in_features or 0, mod.out_features or 0
    out: dict[str, tuple[int, ...]]
    if mod.kind == EMBEDDING:
        out = {f"{base}.lora_embedding_A": (r, in_f), f"{base}.lora_embedding_B": (out_f, r)}
        if config.use_dora:
            out[f"{base}.lora_magnitude_vector"] = (out_f,)
        return out
    out = {f"{base}.lora_A.weight": (r, in_f), f"{base}.lora_B.weight": (out_f, r)}
    if config.lora_bias:
        out[f"{base}.lora_B.bias"] = (out_f,)
    if config.use_dora:
        out[f"{base}.lora_magnitude_vector"] = (out_f,)
    return out


def _model_key(ckpt_key: str) -> str:
    """The key inside the PeftModel (with the adapter name), as PEFT's remap produces it."""
    if ckpt_key.endswith("lora_magnitude_vector"):
        return f"{ckpt_key}.{ADAPTER}.weight"
    for marker in (".lora_A.", ".lora_B."):
        if marker in ckpt_key:
            head, tail = ckpt_key.rsplit(marker, 1)
            return f"{head}{marker}{ADAPTER}.{tail}"
    return f"{ckpt_key}.{ADAPTER}"


class _BaseValues:
    """Reads single tensors of the base's safetensors files (numpy, no torch), only when asked."""

    def __init__(self, arch: BaseArchitecture) -> None:
        self.arch = arch
        self._index: dict[str, WeightFile] | None = None

    def get(self, key: str) -> np.ndarray | None:
        if self.arch.weights_folder is None or self.arch.quantization:
            return None
        if self._index is None:
            self._index = {}
            from loravet.adapter.safetensors_file import SafetensorsError, read_safetensors

            for path in sorted(Path(self.arch.weights_folder).glob("*.safetensors"))[:64]:
                try:
                    wf = read_safetensors(path)
                except SafetensorsError:
                    continue
                for name in wf.tensors:
                    self._index.setdefault(name, wf)
        holder = self._index.get(key)
        arch = self.arch
        if holder is None and arch.output_embedding and key == f"{arch.output_embedding}.weight" and \
                arch.config.get("tie_word_embeddings", True) is not False:
            # a tied output embedding is not saved: it is the input embedding's weight
            embedding = next((m.name for m in arch.modules if m.kind == EMBEDDING), None)
            if embedding is not None:
                key = f"{embedding}.weight"
                holder = self._index.get(key)
        if holder is None or holder.reader is None:
            return None
        try:
            return holder.reader(key)
        except ValueError:
            return None


def _base_key(file_key: str) -> str:
    """The base model's own parameter name for a file key that lands on a base value."""
    key = file_key[len(PREFIX):] if file_key.startswith(PREFIX) else file_key
    return key.replace(".base_layer.", ".").replace(".original_module.", ".")


def _differs_from_base(file_key: str, weights: WeightFile, base: _BaseValues) -> bool | None:
    """Whether a tensor that replaces a base value differs from it (None: cannot tell)."""
    original = base.get(_base_key(file_key))
    if original is None or weights.reader is None:
        return None
    try:
        value = weights.reader(file_key)
    except ValueError:
        return None
    if value.shape != original.shape:
        return True
    # float32 holds F32 / F16 / BF16 exactly, so this is bitwise equality of the stored values
    return not bool(np.array_equal(value, original))


# DoRA magnitude vs the base's column norms: within this many units in the last place of the stored dtype
# the magnitude is the norm PEFT computes itself (its init value); beyond, the output moves.
_ULPS = 4
_EPS = {"F32": float(np.finfo(np.float32).eps), "F16": float(np.finfo(np.float16).eps), "BF16": 2.0 ** -7}


def _dora_magnitude_moves(c: CreatedModule, mod: ModuleSpec | None, magnitude_key: str | None,
                          weights: WeightFile, base: _BaseValues, init_zero_b: bool) -> bool | None:
    """With a zero LoRA update, DoRA scales the output by magnitude / ||W|| (per output row): unchanged iff
    they are equal and no row norm is zero (0 / 0 is NaN). Without a magnitude in the file PEFT initialises
    it to ||W|| itself (B starts at zero). None: cannot tell (no base weights, embeddings, odd dtypes)."""
    if mod is None or c.kind == EMBEDDING:
        return None
    if magnitude_key is None and not init_zero_b:
        return None  # initialised from a random B, then a zero update loaded: not modelled
    w = base.get(f"{mod.name}.weight")
    if w is None or w.ndim != 2:
        return None
    axis = 0 if mod.kind == CONV1D else 1  # Conv1D stores [in, out]
    norms = np.linalg.norm(w.astype(np.float64), axis=axis)
    if np.any(norms == 0):
        return True
    if magnitude_key is None:
        return False
    fk = c.landed[magnitude_key]
    info = weights.tensors.get(fk)
    if info is None or info.dtype not in _EPS or weights.reader is None:
        return None
    try:
        magnitude = weights.reader(fk).astype(np.float64).reshape(-1)
    except ValueError:
        return None
    if norms.shape != magnitude.shape:
        return None
    if not np.all(np.isfinite(magnitude)):
        return True
    tol = _ULPS * _EPS[info.dtype] * np.maximum(np.abs(norms), np.finfo(np.float32).tiny)
    return bool(np.any(np.abs(magnitude - norms) > tol))


def predict_load(
    config: LoraAdapterConfig,
    weights: WeightFile | None,
    arch: BaseArchitecture | None,
    facts: dict[str, TensorFacts] | None = None,
) -> LoadPrediction:
    """What PeftModel.from_pretrained(base, adapter) would do. `facts` (per-tensor zero/NaN) decide inert."""
    if config.foreign_format is not None:
        return LoadPrediction("unknown", "not a PEFT adapter loravet can judge")
    if not config.peft_type_known:
        why = (f"peft_type {config.peft_type!r} is not a PEFT type (peft {SNAPSHOT_PEFT_VERSION} looks it up "
               "exactly): PEFT raises a KeyError")
        return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
    if config.problems:
        return LoadPrediction("fails", "PEFT rejects the config: " + "; ".join(config.problems),
                              failure=config.problems[0], failure_code="invalid-config")
    if not config.is_lora:
        return LoadPrediction("unknown", f"peft_type {config.peft_type}: the predictor models LoRA only "
                              "(--replay runs the installed PEFT)")
    if weights is None and arch is not None:
        return LoadPrediction("fails", "no adapter_model.safetensors or adapter_model.bin: PEFT raises",
                              failure="no weight file", failure_code="weights-file-missing")
    if arch is None:
        return LoadPrediction("unknown", "no base could be resolved")
    unmodelled = _unmodelled_lora_fields(config)
    if unmodelled:
        return LoadPrediction("unknown", f"{', '.join(unmodelled)} set: the predictor does not model these LoRA "
                              "variants (--replay runs the installed PEFT)")
    if arch.guessed_from is not None:
        on_guess = predict_load(config, weights, BaseArchitecture(**{**arch.__dict__, "guessed_from": None,
                                                                     "_by_name": None}), facts)
        return LoadPrediction("unknown", f"the base {arch.guessed_from!r} is no exact catalog entry: by family and "
                              f"size alone it could be {arch.name}, on which PEFT would give "
                              f"{on_guess.outcome!r} ({on_guess.reason}); give --base to decide")
    if weights is None:
        return LoadPrediction("fails", "no adapter_model.safetensors or adapter_model.bin: PEFT raises",
                              failure="no weight file", failure_code="weights-file-missing")

    task = (config.task_type or "").upper()
    cls_name = arch.architectures[0] if arch.architectures else ""
    if task in ("CAUSAL_LM", "SEQ_2_SEQ_LM") and cls_name.endswith("Model") and "For" not in cls_name \
            and not cls_name.endswith("LMHeadModel"):
        # A bare `*Model` has no GenerationMixin: PeftModelForCausalLM / Seq2SeqLM read its
        # `prepare_inputs_for_generation` in __init__ and raise AttributeError (transformers >= 4.50).
        why = (f"task_type {task} on the bare {cls_name} (no generation head): PEFT raises AttributeError "
               "(no prepare_inputs_for_generation)")
        return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
    modules_to_save = _modules_to_save_for(config)
    targets: list[str] | str
    if config.target_modules is None:
        default = default_target_modules("LORA", arch.model_type)
        if default is None:
            why = (f"no target_modules and peft {SNAPSHOT_PEFT_VERSION} has no default for model type "
                   f"{arch.model_type!r}: PEFT raises \"Please specify `target_modules`\"")
            return LoadPrediction("fails", why, failure=why, failure_code="target-not-found")
        targets = default
    elif isinstance(config.target_modules, str) and config.target_modules.lower() == "all-linear":
        targets = _all_linear(arch, task)
    else:
        targets = config.target_modules

    if config.use_dora and arch.quantization == "gptq":
        return LoadPrediction("fails", "DoRA is not supported on GPTQ-quantized layers: PEFT raises",
                              failure="DoRA on GPTQ", failure_code="invalid-config")

    created: list[CreatedModule] = []
    excluded: list[str] = []
    unmatched = 0
    for mod in arch.modules:
        if not mod.name:
            continue
        if _excluded(config, mod.name, modules_to_save):
            excluded.append(mod.name)
            continue
        if not _targeted(config, targets, mod.name):
            unmatched += 1
            continue
        if mod.kind not in LORA_WRAPPABLE:
            return LoadPrediction(
                "fails", f"target {mod.name} is a {mod.type_name or mod.kind}, which LoRA cannot wrap: PEFT raises",
                failure=f"unsupported target module {mod.name} ({mod.type_name})", failure_code="target-not-found")
        if config.lora_bias and mod.kind == EMBEDDING:
            why = f"lora_bias=true with the embedding {mod.name} targeted: PEFT raises (not supported for Embedding)"
            return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
        r = int(_pattern_value(config.rank_pattern, mod.name, config.r))
        alpha = float(_pattern_value(config.alpha_pattern, mod.name, config.lora_alpha, "alpha_pattern"))
        if r <= 0:
            return LoadPrediction("fails", f"rank {r} for {mod.name}: PEFT raises",
                                  failure=f"non-positive rank for {mod.name}", failure_code="invalid-config")
        created.append(CreatedModule(mod.name, mod.kind, r, alpha, config.scaling_for(r, alpha),
                                     _expected_params(mod, r, config)))
    if not created:
        if excluded and not unmatched:
            why = "every matching module is excluded (exclude_modules / modules_to_save)"
        elif config.layers_to_transform is not None and not isinstance(targets, str) and any(
                m.name in targets or any(m.name.endswith(f".{t}") for t in targets) for m in arch.modules if m.name):
            why = (f"target_modules {config.target_modules_as_written()!r} name modules of {arch.name}, but "
                   f"layers_to_transform {config.layers_to_transform!r} (layers_pattern "
                   f"{config.layers_pattern!r}) selects none of their layers")
        else:
            why = f"target_modules {config.target_modules_as_written()!r} match no module of {arch.name}"
        return LoadPrediction("fails", why + ": PEFT raises", failure=why, failure_code="target-not-found")

    # ModulesToSaveWrapper: key.endswith(name), on the full module list.
    wrapped: list[str] = []
    if modules_to_save:
        lora_names = {c.name for c in created}
        # PEFT matches modules_to_save against every module name after LoRA is injected, the LoRA layers'
        # own children included: containers raise a TypeError, modules inside a LoRA layer a ValueError.
        for c in created:
            children = ["lora_dropout", "lora_dropout.default", "lora_A", "lora_B", "lora_embedding_A",
                        "lora_embedding_B", "lora_magnitude_vector"]
            if c.kind != EMBEDDING:
                children += ["lora_A.default", "lora_B.default"]
            if config.use_dora:
                children.append("lora_magnitude_vector.default")
            hit = next((f"{c.name}.{ch}" for ch in children
                        if _ends_with_any(f"{c.name}.{ch}", modules_to_save)), None)
            if hit is not None:
                why = (f"modules_to_save {modules_to_save} matches {hit} (by suffix), inside the LoRA layer PEFT "
                       "creates: PEFT raises")
                return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
            if _ends_with_any(f"{c.name}.base_layer", modules_to_save):
                return LoadPrediction("unknown", f"modules_to_save {modules_to_save} matches {c.name}.base_layer "
                                      "inside a LoRA layer: not modelled (--replay runs the installed PEFT)")
        for mod in arch.modules:
            if not mod.name or not _ends_with_any(mod.name, modules_to_save):
                continue
            if mod.name in lora_names or mod.type_name in _UNWRAPPABLE:
                # PEFT's ModulesToSaveWrapper.check_module (after LoRA is injected)
                what = "a LoRA layer" if mod.name in lora_names else f"a {mod.type_name}"
                why = (f"modules_to_save {modules_to_save} matches {mod.name} (by suffix), which is {what}: "
                       "PEFT raises a TypeError")
                return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
            if any(mod.name.startswith(w + ".") for w in wrapped):
                continue
            wrapped.append(mod.name)
    wrapper_expected: dict[str, tuple[int, ...]] = {}
    for w in wrapped:
        for rel, shape in _subtree_params(arch, w).items():
            wrapper_expected[f"{PREFIX}{w}.{rel}"] = shape

    # The PeftModel's own state dict for base parameters (renamed where wrapped).
    lora_names = {c.name for c in created}
    base_keys: dict[str, tuple[int, ...]] = {}
    for key, shape in arch.state_dict_shapes().items():
        module, _, pname = key.rpartition(".")
        if module in lora_names:
            base_keys[f"{PREFIX}{module}.base_layer.{pname}"] = shape
            continue
        owner = next((w for w in wrapped if key == w or key.startswith(w + ".")), None)
        if owner is not None:
            rel = key[len(owner) + 1:]
            base_keys[f"{PREFIX}{owner}.original_module.{rel}"] = shape
            continue
        base_keys[PREFIX + key] = shape

    expected: dict[str, tuple[int, ...]] = {}
    owner_of: dict[str, CreatedModule] = {}
    model_key_to_ckpt: dict[str, str] = {}
    for c in created:
        for k, shape in c.expected.items():
            expected[k] = shape
            owner_of[k] = c
            model_key_to_ckpt[_model_key(k)] = k

    file_keys = list(weights.tensors)
    pred = LoadPrediction("loads", "", created=created, modules_to_save=wrapped)
    landed_adapter: dict[str, str] = {}
    landed_wrapper: set[str] = set()
    for fk in file_keys:
        shape = weights.tensors[fk].shape
        target_shape: tuple[int, ...] | None = None
        ckpt = fk if fk in expected else model_key_to_ckpt.get(fk)
        if ckpt is not None:
            target_shape = expected[ckpt]
            landed_adapter[ckpt] = fk
            owner_of[ckpt].landed[ckpt] = fk
        elif fk in wrapper_expected:
            target_shape = wrapper_expected[fk]
            landed_wrapper.add(fk)
        elif fk in base_keys:
            target_shape = base_keys[fk]
            pred.overwritten_base.append(fk)
        else:
            pred.unexpected_keys.append(fk)
            continue
        if tuple(shape) != tuple(target_shape):
            pred.mismatched.append((fk, tuple(shape), tuple(target_shape)))

    # A modules_to_save key the file lacks makes PEFT's key translation raise (KeyError).
    missing_wrapper = [k for k in wrapper_expected if k not in landed_wrapper]
    pred.missing_keys = [k for k in expected if k not in landed_adapter]
    pred.matched = len(file_keys) - len(pred.unexpected_keys)
    pred.unexpected = len(pred.unexpected_keys)
    pred.missing = len(pred.missing_keys) + len(missing_wrapper)
    pred.shape_mismatch = len(pred.mismatched)

    if pred.mismatched:
        fk, got, want = pred.mismatched[0]
        pred.outcome = "fails"
        pred.reason = (f"{len(pred.mismatched)} tensor(s) differ in shape from their module, e.g. {fk} is "
                       f"{list(got)} where the base needs {list(want)}: PEFT raises a size mismatch")
        pred.failure, pred.failure_code = pred.reason, "shape-mismatch"
        return pred
    if missing_wrapper:
        pred.outcome = "fails"
        pred.reason = (f"modules_to_save wraps {', '.join(wrapped)} but the file lacks "
                       f"{missing_wrapper[0]}: PEFT raises a KeyError while translating keys")
        pred.failure, pred.failure_code = pred.reason, "modules-to-save-missing"
        return pred

    # Does anything move the output?
    init = config.init_lora_weights
    if isinstance(init, str) and init.lower() != "gaussian":
        if init_mode_is_special(init):
            pred.outcome = "unknown"
            pred.reason = (f"init_lora_weights={init!r} initialises from the base weights on load (and may rewrite "
                           "them): the predictor does not model it (--replay runs the installed PEFT)")
            return pred
        if any(c.kind != EMBEDDING for c in created):
            pred.outcome = "fails"
            pred.reason = f"init_lora_weights={init!r} is not an initialisation PEFT knows: PEFT raises"
            pred.failure, pred.failure_code = pred.reason, "invalid-config"
            return pred
    init_zero_b = init is not False
    base_values = _BaseValues(arch)
    changes: list[str] = []
    undecided: list[str] = []
    for c in created:
        if not math.isfinite(c.scaling):  # lora_alpha NaN/Infinity: 0 * NaN and 0 * inf are NaN, B zero or not
            changes.append(c.name)
            continue
        magnitude_key = next((k for k in c.landed if k.endswith("lora_magnitude_vector")), None)
        if c.scaling == 0:
            if config.use_dora:
                verdict = _dora_magnitude_moves(c, arch.module(c.name), magnitude_key, weights, base_values,
                                                init_zero_b)
                if verdict is None:
                    undecided.append(f"DoRA magnitude of {c.name}")
                elif verdict:
                    changes.append(c.name)
            continue
        def state(suffix: str, c: CreatedModule = c) -> str:
            """'zero', 'nonzero' (landed or random init) or 'absent'."""
            key = next((k for k in c.expected if k.endswith(suffix)), None)
            if key is None:
                return "absent"
            fk = c.landed.get(key)
            if fk is None:
                if c.kind == EMBEDDING:
                    # embedding init: A zeros, B normal (init True); both random when init is false
                    if init is False:
                        return "nonzero"
                    return "zero" if suffix.endswith("_A") else "nonzero"
                if suffix.endswith("lora_B.weight") or suffix.endswith("lora_B.bias"):
                    return "zero" if init_zero_b else "nonzero"
                return "nonzero"
            if facts is None:
                return "nonzero"  # values not examined: judged by keys and shapes alone
            fact = facts.get(fk)
            if fact is None:
                return "unread"  # its values could not be read
            return "zero" if fact.all_zero else "nonzero"

        if c.kind == EMBEDDING:
            a, b = state("lora_embedding_A"), state("lora_embedding_B")
        else:
            a, b = state("lora_A.weight"), state("lora_B.weight")
        moves = a == "nonzero" and b == "nonzero"
        bias = state("lora_B.bias")
        if bias == "nonzero":
            moves = True
        elif not moves and (("unread" in (a, b) and "zero" not in (a, b)) or bias == "unread"):
            undecided.append(f"unreadable values of {c.name}")
            continue
        if not moves and config.use_dora:
            # the update BA is zero: DoRA moves the output only if the magnitude is not the base's own norms
            verdict = _dora_magnitude_moves(c, arch.module(c.name), magnitude_key, weights, base_values,
                                            init_zero_b)
            if verdict is None:
                undecided.append(f"DoRA magnitude of {c.name}")
            moves = bool(verdict)
        if moves:
            changes.append(c.name)
            if not init_zero_b and len(c.landed) < len(c.expected):
                pred.random_init_modules.append(c.name)
        elif c.landed:
            pred.zero_update_modules.append(c.name)
    # Tensors that replace base values (modules_to_save copies, base parameters) move the output only where
    # they differ from the base: decided from the base's weights when its folder has them.
    replaced_differ = False
    if not changes:
        for fk in sorted(landed_wrapper) + pred.overwritten_base:
            differs = _differs_from_base(fk, weights, base_values)
            if differs is None:
                undecided.append(fk)
            elif differs:
                replaced_differ = True
                break
    output_changes = bool(changes) or replaced_differ
    if not output_changes and undecided:
        pred.outcome = "unknown"
        more = f" and {len(undecided) - 1} more" if len(undecided) > 1 else ""
        if undecided[0].startswith("unreadable values"):
            pred.reason = ("whether the output changes depends on tensor values that could not be read "
                           f"({undecided[0]}{more})")
        else:
            pred.reason = (f"whether the output changes depends on the base's weights ({undecided[0]}{more}), which "
                           "are not available: give a base folder with safetensors weights to decide")
        return pred

    if not output_changes:
        pred.outcome = "inert"
        if not landed_adapter and not landed_wrapper:
            pred.reason = "no tensor of the file lands on a module PEFT creates; the created modules start at zero"
        else:
            pred.reason = "every landing update is zero (or scaling is 0): the output cannot change"
    elif pred.missing or pred.unexpected:
        pred.outcome = "partial"
        parts = []
        if pred.unexpected:
            parts.append(f"{pred.unexpected} file tensor(s) land nowhere")
        if pred.missing:
            parts.append(f"{pred.missing} created parameter(s) get no tensor")
        pred.reason = "PEFT loads without error, but " + " and ".join(parts)
    else:
        pred.outcome = "loads"
        pred.reason = f"all {len(created)} created modules receive their tensors and every file tensor lands"
    return pred

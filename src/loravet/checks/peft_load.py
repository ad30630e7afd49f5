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
from loravet.adapter.safetensors_file import SafetensorsError, read_safetensors
from loravet.adapter.tensors import WeightFile
from loravet.base.architecture import CONV1D, EMBEDDING, LINEAR, LORA_WRAPPABLE, BaseArchitecture, ModuleSpec
from loravet.checks.weight_stats import TensorFacts

__all__ = ["SNAPSHOT_PEFT_VERSION", "CreatedModule", "LoadPrediction", "predict_load"]

PREFIX = "base_model.model."
ADAPTER = "default"

# LoraConfig fields whose effect on loading the predictor models. Any other LoRA field set to a value
# other than its default (BD-LoRA, KaSA, aLoRA, trainable tokens, target_parameters, ...) makes the answer
# `unknown`: PEFT builds something the predictor does not describe.
MODELLED_LORA_FIELDS = frozenset(
    {
        "task_type",
        "peft_type",
        "auto_mapping",
        "peft_version",
        "base_model_name_or_path",
        "revision",
        "inference_mode",
        "r",
        "target_modules",
        "exclude_modules",
        "lora_alpha",
        "lora_dropout",
        "fan_in_fan_out",
        "bias",
        "use_rslora",
        "modules_to_save",
        "init_lora_weights",
        "layers_to_transform",
        "layers_pattern",
        "rank_pattern",
        "alpha_pattern",
        "use_dora",
        "lora_bias",
        "megatron_core",
        "runtime_config",
        # init-time settings of init modes that the predictor answers `unknown` for anyway
        "loftq_config",
        "eva_config",
        "corda_config",
        "lora_ga_config",
        "qalora_group_size",
    }
)
_UNWRAPPABLE = frozenset({"ModuleDict", "ModuleList", "ParameterDict", "ParameterList"})


def init_mode_is_special(init: str) -> bool:
    """An init_lora_weights string that LoRA's update_layer dispatches to a data- or base-derived
    initialisation (PiSSA, CorDA, OLoRA, MiCA, LoftQ, EVA, orthogonal, LoRA-GA): these initialise from (and
    may rewrite) the base weights on load. Plain True / False / "gaussian" leave B zero or random; any
    other string makes PEFT raise "Unknown initialization". tests/test_peft_tables.py checks every mode of
    the snapshot's LoraConfig annotation is classified here."""
    return (
        init.startswith(("pissa", "corda"))
        or init.lower() in ("olora", "mica")
        or init in ("loftq", "eva", "orthogonal", "lora_ga")
    )


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
        return {
            "matched": self.matched,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "shape_mismatch": self.shape_mismatch,
        }


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
    return any(key[i + 1 :] in pool for i, ch in enumerate(key) if ch == ".")


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
                match = pattern_match(
                    rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", key, field="layers_pattern", source=pattern
                )
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
            rel = m.name[len(root) + 1 :] if m.name != root else ""
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
            for path in sorted(Path(self.arch.weights_folder).glob("*.safetensors"))[:64]:
                try:
                    wf = read_safetensors(path)
                except SafetensorsError:
                    continue
                for name in wf.tensors:
                    self._index.setdefault(name, wf)
        holder = self._index.get(key)
        arch = self.arch
        if (
            holder is None
            and arch.output_embedding
            and key == f"{arch.output_embedding}.weight"
            and arch.config.get("tie_word_embeddings", True) is not False
        ):
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
    key = file_key[len(PREFIX) :] if file_key.startswith(PREFIX) else file_key
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
_EPS = {"F32": float(np.finfo(np.float32).eps), "F16": float(np.finfo(np.float16).eps), "BF16": 2.0**-7}


def _dora_magnitude_moves(
    c: CreatedModule,
    mod: ModuleSpec | None,
    magnitude_key: str | None,
    weights: WeightFile,
    base: _BaseValues,
    init_zero_b: bool,
) -> bool | None:
    """With a zero LoRA update, DoRA scales the output by magnitude / ||W|| (per output row): unchanged iff
    they are equal and no row norm is zero (0 / 0 is NaN). Without a magnitude in the file PEFT initialises
    it to ||W|| itself (B starts at zero). None: cannot tell (no base weights, embeddings, odd dtypes)."""
    if mod is None or c.kind == EMBEDDING or (magnitude_key is None and not init_zero_b):
        return None  # the last: initialised from a random B, then a zero update loaded: not modelled
    norms = _weight_norms(mod, base)
    if norms is None:
        return None
    if np.any(norms == 0):
        return True
    if magnitude_key is None:
        return False
    stored = _stored_magnitude(weights, c.landed[magnitude_key])
    if stored is None:
        return None
    magnitude, dtype = stored
    if norms.shape != magnitude.shape:
        return None
    if not np.all(np.isfinite(magnitude)):
        return True
    tol = _ULPS * _EPS[dtype] * np.maximum(np.abs(norms), np.finfo(np.float32).tiny)
    return bool(np.any(np.abs(magnitude - norms) > tol))


def _weight_norms(mod: ModuleSpec, base: _BaseValues) -> np.ndarray | None:
    """The norm of each output row of the base module's weight (None: the base's weights are not at hand)."""
    w = base.get(f"{mod.name}.weight")
    if w is None or w.ndim != 2:
        return None
    axis = 0 if mod.kind == CONV1D else 1  # Conv1D stores [in, out]
    norms: np.ndarray = np.linalg.norm(w.astype(np.float64), axis=axis)
    return norms


def _stored_magnitude(weights: WeightFile, file_key: str) -> tuple[np.ndarray, str] | None:
    """A DoRA magnitude vector of the file as float64, with its stored dtype (None: unreadable or odd dtype)."""
    info = weights.tensors.get(file_key)
    if info is None or info.dtype not in _EPS or weights.reader is None:
        return None
    try:
        return weights.reader(file_key).astype(np.float64).reshape(-1), info.dtype
    except ValueError:
        return None


def predict_load(
    config: LoraAdapterConfig,
    weights: WeightFile | None,
    arch: BaseArchitecture | None,
    facts: dict[str, TensorFacts] | None = None,
) -> LoadPrediction:
    """What PeftModel.from_pretrained(base, adapter) would do. `facts` (per-tensor zero/NaN) decide inert.

    PEFT's steps, one function each: whether the predictor can answer at all (`_config_answer`,
    `_base_answer`); which layers PEFT creates on this base (`_peft_layers`); which keys the PeftModel holds
    (`_model_keys`) and where each tensor of the file lands (`_land`); whether loading raises
    (`_load_failure`); whether the output moves (`_output_effect`); the outcome (`_decide`)."""
    early = _config_answer(config)
    if early is not None:
        return early
    if weights is None and arch is not None:
        return _no_weight_file()
    if arch is None:
        return LoadPrediction("unknown", "no base could be resolved")
    early = _base_answer(config, weights, arch, facts)
    if early is not None:
        return early
    if weights is None:
        return _no_weight_file()

    layers = _peft_layers(config, arch)
    if isinstance(layers, LoadPrediction):
        return layers
    landing = _land(weights, _model_keys(arch, layers))
    pred = LoadPrediction(
        "loads",
        "",
        created=layers.created,
        modules_to_save=layers.wrapped,
        matched=len(weights.tensors) - len(landing.unexpected),
        unexpected=len(landing.unexpected),
        missing=len(landing.missing_adapter) + len(landing.missing_wrapper),
        shape_mismatch=len(landing.mismatched),
        missing_keys=landing.missing_adapter,
        unexpected_keys=landing.unexpected,
        mismatched=landing.mismatched,
        overwritten_base=landing.overwritten_base,
    )
    failure = _load_failure(landing, layers.wrapped) or _init_answer(config, layers.created)
    if failure is not None:
        return _settle(pred, *failure)
    effect = _output_effect(config, arch, weights, facts, layers.created, landing)
    pred.random_init_modules, pred.zero_update_modules = effect.random_init, effect.zero_update
    return _settle(pred, *_decide(pred, effect, landing))


# --- whether the predictor can answer ---------------------------------------------------------------------


def _no_weight_file() -> LoadPrediction:
    return LoadPrediction(
        "fails",
        "no adapter_model.safetensors or adapter_model.bin: PEFT raises",
        failure="no weight file",
        failure_code="weights-file-missing",
    )


def _config_answer(config: LoraAdapterConfig) -> LoadPrediction | None:
    """The answer when the config alone settles it: not PEFT, an unknown type, rejected, or not LoRA."""
    if config.foreign_format is not None:
        return LoadPrediction("unknown", "not a PEFT adapter loravet can judge")
    if not config.peft_type_known:
        why = (
            f"peft_type {config.peft_type!r} is not a PEFT type (peft {SNAPSHOT_PEFT_VERSION} looks it up "
            "exactly): PEFT raises a KeyError"
        )
        return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
    if config.problems:
        return LoadPrediction(
            "fails",
            "PEFT rejects the config: " + "; ".join(config.problems),
            failure=config.problems[0],
            failure_code="invalid-config",
        )
    if not config.is_lora:
        return LoadPrediction(
            "unknown",
            f"peft_type {config.peft_type}: the predictor models LoRA only (--replay runs the installed PEFT)",
        )
    return None


def _base_answer(
    config: LoraAdapterConfig, weights: WeightFile | None, arch: BaseArchitecture, facts: dict[str, TensorFacts] | None
) -> LoadPrediction | None:
    """`unknown` for LoRA variants the predictor does not model, and for a base only guessed by family and size
    (with what PEFT would do on the guess)."""
    unmodelled = _unmodelled_lora_fields(config)
    if unmodelled:
        return LoadPrediction(
            "unknown",
            f"{', '.join(unmodelled)} set: the predictor does not model these LoRA "
            "variants (--replay runs the installed PEFT)",
        )
    if arch.guessed_from is not None:
        on_guess = predict_load(
            config, weights, BaseArchitecture(**{**arch.__dict__, "guessed_from": None, "_by_name": None}), facts
        )
        return LoadPrediction(
            "unknown",
            f"the base {arch.guessed_from!r} is no exact catalog entry: by family and "
            f"size alone it could be {arch.name}, on which PEFT would give "
            f"{on_guess.outcome!r} ({on_guess.reason}); give --base to decide",
        )
    return None


# --- which layers PEFT creates on this base ---------------------------------------------------------------


@dataclass
class PeftLayers:
    """What `PeftModel.from_pretrained` builds on the base before it reads the file."""

    created: list[CreatedModule]
    """the LoRA layers, in module order"""
    wrapped: list[str]
    """modules_to_save roots, each copied into a ModulesToSaveWrapper"""


def _peft_layers(config: LoraAdapterConfig, arch: BaseArchitecture) -> PeftLayers | LoadPrediction:
    """The PeftModel class's extra modules_to_save, the target modules, the LoRA layers and the wrapped
    modules_to_save; or the failure PEFT raises while building them."""
    task = (config.task_type or "").upper()
    bare = _bare_model_answer(task, arch)
    if bare is not None:
        return bare
    modules_to_save = _modules_to_save_for(config)
    targets = _target_modules(config, arch, task)
    if isinstance(targets, LoadPrediction):
        return targets
    if config.use_dora and arch.quantization == "gptq":
        return LoadPrediction(
            "fails",
            "DoRA is not supported on GPTQ-quantized layers: PEFT raises",
            failure="DoRA on GPTQ",
            failure_code="invalid-config",
        )
    created = _create_layers(config, arch, targets, modules_to_save)
    if isinstance(created, LoadPrediction):
        return created
    wrapped = _wrap_modules_to_save(config, arch, created, modules_to_save)
    if isinstance(wrapped, LoadPrediction):
        return wrapped
    return PeftLayers(created, wrapped)


def _bare_model_answer(task: str, arch: BaseArchitecture) -> LoadPrediction | None:
    cls_name = arch.architectures[0] if arch.architectures else ""
    if (
        task in ("CAUSAL_LM", "SEQ_2_SEQ_LM")
        and cls_name.endswith("Model")
        and "For" not in cls_name
        and not cls_name.endswith("LMHeadModel")
    ):
        # A bare `*Model` has no GenerationMixin: PeftModelForCausalLM / Seq2SeqLM read its
        # `prepare_inputs_for_generation` in __init__ and raise AttributeError (transformers >= 4.50).
        why = (
            f"task_type {task} on the bare {cls_name} (no generation head): PEFT raises AttributeError "
            "(no prepare_inputs_for_generation)"
        )
        return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
    return None


def _target_modules(config: LoraAdapterConfig, arch: BaseArchitecture, task: str) -> list[str] | str | LoadPrediction:
    """target_modules as PEFT uses them: the model type's default when unset, `all-linear` expanded."""
    if config.target_modules is None:
        default = default_target_modules("LORA", arch.model_type)
        if default is None:
            why = (
                f"no target_modules and peft {SNAPSHOT_PEFT_VERSION} has no default for model type "
                f'{arch.model_type!r}: PEFT raises "Please specify `target_modules`"'
            )
            return LoadPrediction("fails", why, failure=why, failure_code="target-not-found")
        return default
    if isinstance(config.target_modules, str) and config.target_modules.lower() == "all-linear":
        return _all_linear(arch, task)
    return config.target_modules


def _create_layers(
    config: LoraAdapterConfig, arch: BaseArchitecture, targets: list[str] | str, modules_to_save: list[str] | None
) -> list[CreatedModule] | LoadPrediction:
    """The LoRA layer of each targeted module (PEFT's `check_target_module_exists` over every module)."""
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
        layer = _layer_for(config, mod)
        if isinstance(layer, LoadPrediction):
            return layer
        created.append(layer)
    if not created:
        why = _why_no_target(config, arch, targets, bool(excluded and not unmatched))
        return LoadPrediction("fails", why + ": PEFT raises", failure=why, failure_code="target-not-found")
    return created


def _layer_for(config: LoraAdapterConfig, mod: ModuleSpec) -> CreatedModule | LoadPrediction:
    if mod.kind not in LORA_WRAPPABLE:
        return LoadPrediction(
            "fails",
            f"target {mod.name} is a {mod.type_name or mod.kind}, which LoRA cannot wrap: PEFT raises",
            failure=f"unsupported target module {mod.name} ({mod.type_name})",
            failure_code="target-not-found",
        )
    if config.lora_bias and mod.kind == EMBEDDING:
        why = f"lora_bias=true with the embedding {mod.name} targeted: PEFT raises (not supported for Embedding)"
        return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
    r = int(_pattern_value(config.rank_pattern, mod.name, config.r))
    alpha = float(_pattern_value(config.alpha_pattern, mod.name, config.lora_alpha, "alpha_pattern"))
    if r <= 0:
        return LoadPrediction(
            "fails",
            f"rank {r} for {mod.name}: PEFT raises",
            failure=f"non-positive rank for {mod.name}",
            failure_code="invalid-config",
        )
    return CreatedModule(mod.name, mod.kind, r, alpha, config.scaling_for(r, alpha), _expected_params(mod, r, config))


def _why_no_target(
    config: LoraAdapterConfig, arch: BaseArchitecture, targets: list[str] | str, all_excluded: bool
) -> str:
    if all_excluded:
        return "every matching module is excluded (exclude_modules / modules_to_save)"
    if (
        config.layers_to_transform is not None
        and not isinstance(targets, str)
        and any(m.name in targets or any(m.name.endswith(f".{t}") for t in targets) for m in arch.modules if m.name)
    ):
        return (
            f"target_modules {config.target_modules_as_written()!r} name modules of {arch.name}, but "
            f"layers_to_transform {config.layers_to_transform!r} (layers_pattern "
            f"{config.layers_pattern!r}) selects none of their layers"
        )
    return f"target_modules {config.target_modules_as_written()!r} match no module of {arch.name}"


def _wrap_modules_to_save(
    config: LoraAdapterConfig, arch: BaseArchitecture, created: list[CreatedModule], modules_to_save: list[str] | None
) -> list[str] | LoadPrediction:
    """ModulesToSaveWrapper: key.endswith(name), on the full module list."""
    wrapped: list[str] = []
    if not modules_to_save:
        return wrapped
    inside = _inside_lora_answer(config, created, modules_to_save)
    if inside is not None:
        return inside
    lora_names = {c.name for c in created}
    for mod in arch.modules:
        if not mod.name or not _ends_with_any(mod.name, modules_to_save):
            continue
        if mod.name in lora_names or mod.type_name in _UNWRAPPABLE:
            # PEFT's ModulesToSaveWrapper.check_module (after LoRA is injected)
            what = "a LoRA layer" if mod.name in lora_names else f"a {mod.type_name}"
            why = (
                f"modules_to_save {modules_to_save} matches {mod.name} (by suffix), which is {what}: "
                "PEFT raises a TypeError"
            )
            return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
        if any(mod.name.startswith(w + ".") for w in wrapped):
            continue
        wrapped.append(mod.name)
    return wrapped


def _inside_lora_answer(
    config: LoraAdapterConfig, created: list[CreatedModule], modules_to_save: list[str]
) -> LoadPrediction | None:
    """PEFT matches modules_to_save against every module name after LoRA is injected, the LoRA layers' own
    children included: containers raise a TypeError, modules inside a LoRA layer a ValueError."""
    for c in created:
        children = [
            "lora_dropout",
            "lora_dropout.default",
            "lora_A",
            "lora_B",
            "lora_embedding_A",
            "lora_embedding_B",
            "lora_magnitude_vector",
        ]
        if c.kind != EMBEDDING:
            children += ["lora_A.default", "lora_B.default"]
        if config.use_dora:
            children.append("lora_magnitude_vector.default")
        hit = next((f"{c.name}.{ch}" for ch in children if _ends_with_any(f"{c.name}.{ch}", modules_to_save)), None)
        if hit is not None:
            why = (
                f"modules_to_save {modules_to_save} matches {hit} (by suffix), inside the LoRA layer PEFT "
                "creates: PEFT raises"
            )
            return LoadPrediction("fails", why, failure=why, failure_code="invalid-config")
        if _ends_with_any(f"{c.name}.base_layer", modules_to_save):
            return LoadPrediction(
                "unknown",
                f"modules_to_save {modules_to_save} matches {c.name}.base_layer "
                "inside a LoRA layer: not modelled (--replay runs the installed PEFT)",
            )
    return None


# --- which keys the PeftModel holds, and where each tensor of the file lands -----------------------------


@dataclass
class ModelKeys:
    """The PeftModel's state-dict keys a file tensor can land on, each with the shape it needs."""

    adapter: dict[str, tuple[int, ...]]
    """checkpoint key of a created LoRA parameter -> shape"""
    owner_of: dict[str, CreatedModule]
    """checkpoint key -> the LoRA layer that holds it"""
    by_model_key: dict[str, str]
    """the same parameter's key inside the PeftModel (with the adapter name) -> checkpoint key"""
    wrapper: dict[str, tuple[int, ...]]
    """parameters of the modules_to_save copies"""
    base: dict[str, tuple[int, ...]]
    """the base's own parameters (renamed where wrapped)"""


def _model_keys(arch: BaseArchitecture, layers: PeftLayers) -> ModelKeys:
    keys = ModelKeys({}, {}, {}, {}, {})
    for w in layers.wrapped:
        for rel, shape in _subtree_params(arch, w).items():
            keys.wrapper[f"{PREFIX}{w}.{rel}"] = shape
    lora_names = {c.name for c in layers.created}
    for key, shape in arch.state_dict_shapes().items():
        module, _, pname = key.rpartition(".")
        if module in lora_names:
            keys.base[f"{PREFIX}{module}.base_layer.{pname}"] = shape
            continue
        owner = next((w for w in layers.wrapped if key == w or key.startswith(w + ".")), None)
        if owner is not None:
            rel = key[len(owner) + 1 :]
            keys.base[f"{PREFIX}{owner}.original_module.{rel}"] = shape
            continue
        keys.base[PREFIX + key] = shape
    for c in layers.created:
        for k, shape in c.expected.items():
            keys.adapter[k] = shape
            keys.owner_of[k] = c
            keys.by_model_key[_model_key(k)] = k
    return keys


@dataclass
class Landing:
    """Where `load_state_dict(strict=False)` puts each tensor of the file, after PEFT's key remap."""

    adapter: dict[str, str] = field(default_factory=dict)
    """checkpoint key of a created parameter -> the file key that landed on it"""
    wrapper: set[str] = field(default_factory=set)
    """file keys landing on modules_to_save copies"""
    overwritten_base: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    missing_adapter: list[str] = field(default_factory=list)
    missing_wrapper: list[str] = field(default_factory=list)
    """modules_to_save keys the file lacks: PEFT's key translation raises (KeyError)"""


def _land(weights: WeightFile, keys: ModelKeys) -> Landing:
    """Lands the file's tensors (recording on each created layer what it received)."""
    landing = Landing()
    for fk, info in weights.tensors.items():
        target_shape: tuple[int, ...] | None = None
        ckpt = fk if fk in keys.adapter else keys.by_model_key.get(fk)
        if ckpt is not None:
            target_shape = keys.adapter[ckpt]
            landing.adapter[ckpt] = fk
            keys.owner_of[ckpt].landed[ckpt] = fk
        elif fk in keys.wrapper:
            target_shape = keys.wrapper[fk]
            landing.wrapper.add(fk)
        elif fk in keys.base:
            target_shape = keys.base[fk]
            landing.overwritten_base.append(fk)
        else:
            landing.unexpected.append(fk)
            continue
        if tuple(info.shape) != tuple(target_shape):
            landing.mismatched.append((fk, tuple(info.shape), tuple(target_shape)))
    landing.missing_wrapper = [k for k in keys.wrapper if k not in landing.wrapper]
    landing.missing_adapter = [k for k in keys.adapter if k not in landing.adapter]
    return landing


# --- the decision -------------------------------------------------------------------------------------------

_Answer = tuple[str, str, str | None]
"""outcome, reason, failure code (None: not a failure)"""


def _settle(pred: LoadPrediction, outcome: str, reason: str, failure_code: str | None) -> LoadPrediction:
    pred.outcome, pred.reason = outcome, reason
    if failure_code is not None:
        pred.failure, pred.failure_code = reason, failure_code
    return pred


def _load_failure(landing: Landing, wrapped: list[str]) -> _Answer | None:
    """What `load_state_dict` raises: a size mismatch, or a KeyError for a modules_to_save key the file lacks."""
    if landing.mismatched:
        fk, got, want = landing.mismatched[0]
        return (
            "fails",
            f"{len(landing.mismatched)} tensor(s) differ in shape from their module, e.g. {fk} is "
            f"{list(got)} where the base needs {list(want)}: PEFT raises a size mismatch",
            "shape-mismatch",
        )
    if landing.missing_wrapper:
        return (
            "fails",
            f"modules_to_save wraps {', '.join(wrapped)} but the file lacks "
            f"{landing.missing_wrapper[0]}: PEFT raises a KeyError while translating keys",
            "modules-to-save-missing",
        )
    return None


def _init_answer(config: LoraAdapterConfig, created: list[CreatedModule]) -> _Answer | None:
    """init_lora_weights modes the predictor does not model (`unknown`), or that PEFT does not know (fails)."""
    init = config.init_lora_weights
    if not isinstance(init, str) or init.lower() == "gaussian":
        return None
    if init_mode_is_special(init):
        return (
            "unknown",
            f"init_lora_weights={init!r} initialises from the base weights on load (and may rewrite "
            "them): the predictor does not model it (--replay runs the installed PEFT)",
            None,
        )
    if any(c.kind != EMBEDDING for c in created):
        return (
            "fails",
            f"init_lora_weights={init!r} is not an initialisation PEFT knows: PEFT raises",
            "invalid-config",
        )
    return None


@dataclass
class OutputEffect:
    """Whether the loaded adapter moves the base's output."""

    changes: list[str] = field(default_factory=list)
    """LoRA layers whose update is not zero"""
    undecided: list[str] = field(default_factory=list)
    """what could not be told (unreadable values, DoRA magnitudes or replaced tensors without base weights)"""
    random_init: list[str] = field(default_factory=list)
    zero_update: list[str] = field(default_factory=list)
    replaced_differ: bool = False
    """a modules_to_save copy or base parameter in the file differs from the base's own value"""


@dataclass
class ModuleEffect:
    moves: bool
    undecided: str | None = None
    by_update: bool = True
    """judged by its landed / initialised update (so it counts as random-init or zero-update)"""


def _output_effect(
    config: LoraAdapterConfig,
    arch: BaseArchitecture,
    weights: WeightFile,
    facts: dict[str, TensorFacts] | None,
    created: list[CreatedModule],
    landing: Landing,
) -> OutputEffect:
    init_zero_b = config.init_lora_weights is not False
    base_values = _BaseValues(arch)
    effect = OutputEffect()
    for c in created:
        one = _module_effect(c, config, arch, weights, base_values, facts)
        if one.undecided is not None:
            effect.undecided.append(one.undecided)
        if one.moves:
            effect.changes.append(c.name)
        if not one.by_update:
            continue
        if one.moves:
            if not init_zero_b and len(c.landed) < len(c.expected):
                effect.random_init.append(c.name)
        elif c.landed:
            effect.zero_update.append(c.name)
    if not effect.changes:
        effect.replaced_differ = _replaced_differ(landing, weights, base_values, effect.undecided)
    return effect


def _replaced_differ(landing: Landing, weights: WeightFile, base_values: _BaseValues, undecided: list[str]) -> bool:
    """Tensors that replace base values (modules_to_save copies, base parameters) move the output only where
    they differ from the base: decided from the base's weights when its folder has them (appends to `undecided`
    those it cannot tell)."""
    for fk in sorted(landing.wrapper) + landing.overwritten_base:
        differs = _differs_from_base(fk, weights, base_values)
        if differs is None:
            undecided.append(fk)
        elif differs:
            return True
    return False


def _module_effect(
    c: CreatedModule,
    config: LoraAdapterConfig,
    arch: BaseArchitecture,
    weights: WeightFile,
    base_values: _BaseValues,
    facts: dict[str, TensorFacts] | None,
) -> ModuleEffect:
    init = config.init_lora_weights
    init_zero_b = init is not False
    if not math.isfinite(c.scaling):  # lora_alpha NaN/Infinity: 0 * NaN and 0 * inf are NaN, B zero or not
        return ModuleEffect(True, by_update=False)
    magnitude_key = next((k for k in c.landed if k.endswith("lora_magnitude_vector")), None)
    if c.scaling == 0:
        if not config.use_dora:
            return ModuleEffect(False, by_update=False)
        verdict = _dora_magnitude_moves(c, arch.module(c.name), magnitude_key, weights, base_values, init_zero_b)
        return ModuleEffect(bool(verdict), None if verdict is not None else f"DoRA magnitude of {c.name}", False)
    if c.kind == EMBEDDING:
        a, b = (_param_state(c, s, init, facts) for s in ("lora_embedding_A", "lora_embedding_B"))
    else:
        a, b = (_param_state(c, s, init, facts) for s in ("lora_A.weight", "lora_B.weight"))
    moves = a == "nonzero" and b == "nonzero"
    bias = _param_state(c, "lora_B.bias", init, facts)
    if bias == "nonzero":
        return ModuleEffect(True)
    if not moves and (("unread" in (a, b) and "zero" not in (a, b)) or bias == "unread"):
        return ModuleEffect(False, f"unreadable values of {c.name}", by_update=False)
    if moves or not config.use_dora:
        return ModuleEffect(moves)
    # the update BA is zero: DoRA moves the output only if the magnitude is not the base's own norms
    verdict = _dora_magnitude_moves(c, arch.module(c.name), magnitude_key, weights, base_values, init_zero_b)
    return ModuleEffect(bool(verdict), None if verdict is not None else f"DoRA magnitude of {c.name}")


def _param_state(c: CreatedModule, suffix: str, init: Any, facts: dict[str, TensorFacts] | None) -> str:
    """'zero', 'nonzero' (landed or random init), 'unread' (landed, values unreadable) or 'absent'."""
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
            return "zero" if init is not False else "nonzero"
        return "nonzero"
    if facts is None:
        return "nonzero"  # values not examined: judged by keys and shapes alone
    fact = facts.get(fk)
    if fact is None:
        return "unread"  # its values could not be read
    return "zero" if fact.all_zero else "nonzero"


def _decide(pred: LoadPrediction, effect: OutputEffect, landing: Landing) -> _Answer:
    """The outcome in the SPEC's order, once loading does not raise: unknown, inert, partial, loads."""
    output_changes = bool(effect.changes) or effect.replaced_differ
    if not output_changes and effect.undecided:
        first = effect.undecided[0]
        more = f" and {len(effect.undecided) - 1} more" if len(effect.undecided) > 1 else ""
        if first.startswith("unreadable values"):
            return (
                "unknown",
                f"whether the output changes depends on tensor values that could not be read ({first}{more})",
                None,
            )
        return (
            "unknown",
            f"whether the output changes depends on the base's weights ({first}{more}), which "
            "are not available: give a base folder with safetensors weights to decide",
            None,
        )
    if not output_changes:
        if not landing.adapter and not landing.wrapper:
            return (
                "inert",
                "no tensor of the file lands on a module PEFT creates; the created modules start at zero",
                None,
            )
        return ("inert", "every landing update is zero (or scaling is 0): the output cannot change", None)
    if pred.missing or pred.unexpected:
        parts = []
        if pred.unexpected:
            parts.append(f"{pred.unexpected} file tensor(s) land nowhere")
        if pred.missing:
            parts.append(f"{pred.missing} created parameter(s) get no tensor")
        return ("partial", "PEFT loads without error, but " + " and ".join(parts), None)
    return ("loads", f"all {len(pred.created)} created modules receive their tensors and every file tensor lands", None)

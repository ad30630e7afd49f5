"""Replay `PeftModel.from_pretrained(base, adapter)` with the installed PEFT on a weightless base.

The base's module tree is built from its config.json alone on the meta device (no weights exist, none
are read), in the class its `architectures` and the adapter's task type call for. The installed PEFT's
real `PeftModel.from_pretrained` then runs on it with the adapter's tensors, with
`low_cpu_mem_usage=True`: PEFT creates its adapter parameters on the meta device and loads the file with
`load_state_dict(strict=False, assign=True)`, so torch's own shape check raises exactly as in a real load,
and every parameter that received a tensor stops being a meta tensor. What PEFT does is translated:

* it raises -> ``fails`` (size mismatches, no target module, config rejected, ...), with PEFT's message;
* its load result (missing / unexpected keys), and base parameters a file tensor replaced -> ``keys``;
* whether the output can change -> decided from the file's tensor values with one rule per PEFT type,
  each the negation of that type's identity initialisation (LoRA: B zero; IA3: vectors all one; ...).
  Two rules need the base's own weights, read one tensor at a time from a local base folder: DoRA with a
  zero update (the predictor's magnitude-vs-norm rule, shared, not copied) and HRA (W·R against W, bitwise,
  R computed by PEFT's own layer). A type without a rule, or a decision that needs base weights that are
  not at hand, gives ``unknown`` with the reason.

One process replays many adapters with one skeleton per base, and one PEFT load per adapter layout (config,
keys, shapes, dtypes): adapters that differ only in their values (the folds of a k-fold run) are judged on
the last load.

Only safe bytes reach PEFT: the adapter's safetensors file, or a .bin whose pickle loravet already read
without unpickling (its values, decoded by loravet's own reader, are written to a temporary
safetensors file). PEFT never sees a .bin.

torch, transformers and peft are imported inside the functions that need them: the static path
(`loravet check` without --replay, where the predictor answers) stays free of them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loravet.adapter.tensors import WeightFile
from loravet.base.architecture import CONV1D, EMBEDDING, LINEAR, BaseArchitecture, ModuleSpec
from loravet.checks.load_findings import LoadKeys, add_load_findings
from loravet.checks.peft_load import CreatedModule, _BaseValues, _dora_magnitude_moves
from loravet.extras import peft_version, replay_available
from loravet.findings import make_finding

__all__ = ["Layers", "ReplayResult", "Replayer", "identity_verdict", "peft_version", "replay_available", "replay_load"]

ADAPTER = "default"
PREFIX = "base_model.model."
_SEG = re.compile(r"\.default(?=\.|$)")

# the Auto class PEFT's task types are used with (peft.MODEL_TYPE_TO_PEFT_MODEL_MAPPING's classes wrap these)
_TASK_AUTO = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "TOKEN_CLS": "AutoModelForTokenClassification",
    "QUESTION_ANS": "AutoModelForQuestionAnswering",
    "FEATURE_EXTRACTION": "AutoModel",
}
# prompt-learning types: virtual tokens / prefixes are attended to, so the output always changes
# types whose default initialisation (init_weights / init_lora_weights true) leaves the output unchanged
# (each checked against PEFT in tests/test_differential.py::test_identity_rule_matches_peft_initialisation)
_IDENTITY_INIT = frozenset({"LOHA", "LOKR", "OFT", "BOFT", "VERA", "ADALORA"})
_PROMPT_TYPES = frozenset({"PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"})


@dataclass
class ReplayResult:
    outcome: str  # unknown | fails | inert | partial | loads
    reason: str
    failure_code: str | None = None
    error: str | None = None
    matched: int | None = None
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    overwritten_base: list[str] = field(default_factory=list)
    zero_modules: list[str] = field(default_factory=list)
    landed_modules: int = 0
    random_init_modules: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    model_class: str | None = None
    notes: list[str] = field(default_factory=list)

    def keys_json(self) -> dict[str, int | None]:
        if self.outcome == "fails":
            return {
                "matched": None,
                "missing": None,
                "unexpected": None,
                "shape_mismatch": len(self.mismatched) if self.mismatched else None,
            }
        if self.matched is None:
            return {"matched": None, "missing": None, "unexpected": None, "shape_mismatch": None}
        return {
            "matched": self.matched,
            "missing": len(self.missing_keys),
            "unexpected": len(self.unexpected_keys),
            "shape_mismatch": 0,
        }


# ---------------------------------------------------------------------------------------------------------
# "Changes nothing": one rule per PEFT type, on the values of the tensors that land, module by module.
# Each rule is the negation of the type's identity initialisation in PEFT (tested against it in
# tests/test_differential.py). True: this module changes the output; False: it cannot; None: cannot tell.

Verdict = tuple[bool | None, str]
Params = dict[str, np.ndarray | None]


def _zero(a: np.ndarray | None) -> bool:
    return a is not None and not np.any(a)


def _ones(a: np.ndarray | None) -> bool:
    return a is not None and bool(np.all(a == 1))


def _role(param: str, names: tuple[str, ...]) -> str | None:
    """The adapter-layer name a parameter path (relative to its module) belongs to."""
    head = param.split(".", 1)[0]
    return head if head in names else None


def _heads(params: Params, *names: str) -> list[np.ndarray | None]:
    """The values of the parameters whose first path segment is one of `names`."""
    return [v for p, v in params.items() if p.split(".", 1)[0] in names]


class Layers:
    """What the rules that need more than the file's values use, asked lazily, module by module: the replayed
    PeftModel's own layers (PEFT's own computations on the file's tensors) and the base's own weights (a
    local base folder's safetensors, read one tensor at a time and only when a decision needs it, through
    the predictor's reader). Modules are named as in the base (no `base_model.model.`, no adapter name)."""

    def __init__(
        self,
        layers: dict[str, Any] | None = None,
        file_keys: dict[str, dict[str, str]] | None = None,
        weights: WeightFile | None = None,
        base: _BaseValues | None = None,
        dtype: str | None = None,
        init_zero_b: bool = True,
    ) -> None:
        self.layers = layers or {}
        self.file_keys = file_keys or {}
        self.weights = weights
        self.base = base
        self.dtype = dtype  # the dtype transformers loads the base in (`dtype="auto"`: its config's)
        self.init_zero_b = init_zero_b

    def _kind(self, module: str) -> str:
        import torch  # heavy: replay only (a replayed layer exists only after torch was imported)

        layer = self.layers.get(module)
        base_layer = layer.get_base_layer() if layer is not None else None
        if isinstance(base_layer, torch.nn.Embedding):
            return EMBEDDING
        return CONV1D if type(base_layer).__name__ == "Conv1D" else LINEAR

    def dora_moves(self, module: str) -> Verdict:
        """DoRA with a zero update scales the output by magnitude / ||W||: the predictor's exact decision
        (checks/peft_load.py) on the base's own weight, when a local base folder has it."""
        unknown = "DoRA magnitude with a zero update: inert only if it equals the base's weight norms"
        fk = self.file_keys.get(module, {}).get("lora_magnitude_vector.weight")
        if self.base is None or self.weights is None or fk is None:
            return None, unknown + " (needs the base's weights)"
        kind = self._kind(module)
        created = CreatedModule(module, kind, 0, 0.0, 0.0, {}, {fk: fk})
        moves = _dora_magnitude_moves(created, ModuleSpec(module, kind), fk, self.weights, self.base, self.init_zero_b)
        if moves is None:
            return None, unknown + " (needs the base's weights: none could be read for it)"
        return moves, (
            "DoRA magnitude differs from the base's weight norms"
            if moves
            else "zero update and a DoRA magnitude equal to the base's weight norms"
        )

    def hra_moves(self, module: str, hra_u: np.ndarray) -> Verdict:
        """HRA replaces the layer's weight W by W·R, R the product of the Householder reflections of hra_u
        (PEFT's own get_delta_weight on the replayed layer). PEFT's own init pairs identical vectors, so R is
        the identity only up to rounding: W·R == W is then decided on the base's own W, bitwise, as PEFT's
        forward computes it (torch.mm in float32)."""
        import torch  # heavy: replay only

        layer = self.layers.get(module)
        if layer is None or not isinstance(layer.get_base_layer(), torch.nn.Linear):
            return None, "HRA on a layer that is not nn.Linear"
        r = _hra_product(layer, hra_u)
        if r is None:
            return None, "PEFT cannot compute the HRA rotation from these vectors"
        exact = bool(torch.equal(r, torch.eye(r.shape[0], dtype=r.dtype)))
        w = self.base.get(f"{module}.weight") if self.base is not None else None
        if w is None:
            if exact:
                return self._fp32(False, "the reflections compose to exactly the identity")
            if float((r - torch.eye(r.shape[0], dtype=r.dtype)).abs().max()) > 1e-5:
                return True, "the reflections rotate"
            return None, (
                "the reflections compose to the identity only up to rounding (PEFT's own init): whether "
                "W·R rounds back to the base's W needs the base's weights"
            )
        wt = torch.from_numpy(np.array(w, dtype=np.float32))  # a writable copy
        if wt.ndim != 2 or wt.shape[1] != r.shape[0]:
            return None, "the base's weight does not fit the HRA rotation"
        if not torch.equal(torch.mm(wt, r), wt):
            return True, "W·R differs from the base's W (the reflections move the weight)"
        return self._fp32(False, "W·R equals the base's W bitwise")

    def _fp32(self, verdict: bool, reason: str) -> Verdict:
        """HRA computes the layer in float32: equal weights give an equal output only on a float32 base."""
        if self.dtype in ("float32", "torch.float32"):
            return verdict, reason
        return None, f"{reason}, but PEFT computes the layer in float32 where the base loads in {self.dtype}"


def _hra_product(layer: Any, hra_u: np.ndarray) -> Any:
    """R from the file's hra_u (float32, as PEFT's autocast keeps adapter weights), by PEFT's own code."""
    import torch  # heavy: replay only

    try:
        with torch.no_grad():
            layer.hra_u[ADAPTER] = torch.nn.Parameter(
                torch.from_numpy(np.array(hra_u, dtype=np.float32)), requires_grad=False
            )
            r = layer.get_delta_weight(ADAPTER).cpu()
    except Exception:
        return None
    return r if bool(torch.isfinite(r).all()) else None


@dataclass
class _Rule:
    """One module's inputs to a rule."""

    module: str
    params: Params
    raw: dict[str, Any]
    scaling_zero: bool
    layers: Layers


_LORA_ROLES = {
    "lora_A": "A",
    "lora_embedding_A": "A",
    "lora_B": "B",
    "lora_embedding_B": "B",
    "lora_magnitude_vector": "magnitude",
    "lora_diag": "diag",
    "lora_E": "diag",
}


def _lora_roles(params: Params) -> dict[str, np.ndarray]:
    """A / B / bias / diag / magnitude values of a LoRA-like module (parameters without a tensor left out)."""
    roles: dict[str, np.ndarray] = {}
    for p, v in params.items():
        head = p.split(".", 1)[0]
        role = _LORA_ROLES.get(head)
        if role is None or v is None:
            continue  # no tensor: the init value (handled by _lora_update)
        roles["bias" if head in ("lora_B", "lora_embedding_B") and p.endswith(".bias") else role] = v
    return roles


def _lora_update(x: _Rule, init: Any) -> Verdict:
    """LoRA (and DoRA, lora_bias, KaSA, BD-LoRA, AdaLoRA): delta = scale * B diag? A (+ B bias)."""
    roles = _lora_roles(x.params)
    default_init = init is True or (isinstance(init, str) and init.lower() == "gaussian")
    if x.scaling_zero:
        return False, "scaling is 0"
    if ("A" not in roles or "B" not in roles) and not default_init:
        return (True, "random init") if init is False else (None, f"init_lora_weights={init!r}")
    b_zero = _zero(roles["B"]) if "B" in roles else True  # PEFT's default init: B zero
    a_zero = _zero(roles["A"]) if "A" in roles else False
    product_zero = b_zero or a_zero or _zero(roles.get("diag"))
    bias_moves = "bias" in roles and not _zero(roles["bias"])
    if not product_zero or bias_moves:
        return True, "nonzero update"
    if "magnitude" in roles:
        return x.layers.dora_moves(x.module)
    return False, "zero update"


def _rule_lora(x: _Rule) -> Verdict:
    if x.raw.get("kasa_config"):
        # KaSA truncates the base weight's r smallest singular components when the adapter is added
        return True, "KaSA truncates the base weight"
    return _lora_update(x, x.raw.get("init_lora_weights", True))


def _rule_adalora(x: _Rule) -> Verdict:
    if any(v is None for v in x.params.values()):
        return None, "AdaLoRA parameters without a tensor"
    return _lora_update(x, True)


def _rule_ia3(x: _Rule) -> Verdict:
    vals = list(x.params.values())
    moves = not all(_ones(v) for v in vals if v is not None)
    if any(v is None for v in vals) and x.raw.get("init_ia3_weights", True) is not True:
        return None, "init_ia3_weights"
    return moves, (
        "IA3 vectors differ from one" if moves else "IA3 vectors all one (those without a tensor start at one)"
    )


def _rule_loha_lokr(x: _Rule) -> Verdict:
    t = str(x.raw.get("peft_type", "")).upper()
    if any(v is None for v in x.params.values()):
        return None, f"{t} factors without a tensor"

    def zero(*names: str) -> bool:
        return any(_zero(v) for v in _heads(x.params, *names))

    if t == "LOHA":
        a_factor_zero = zero("hada_w1_a", "hada_w1_b", "hada_t1") or zero("hada_w2_a", "hada_w2_b", "hada_t2")
    else:
        a_factor_zero = zero("lokr_w1", "lokr_w1_a", "lokr_w1_b") or zero(
            "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"
        )
    moves = not a_factor_zero and not x.scaling_zero
    return moves, ("both factors nonzero" if moves else "a factor is zero")


def _rule_vera(x: _Rule) -> Verdict:
    if any(v is None for v in x.params.values()):
        return None, "VeRA vectors without a tensor"
    moves = not any(_zero(v) for v in _heads(x.params, "vera_lambda_b", "vera_lambda_d"))
    return moves, ("nonzero lambda_b and lambda_d" if moves else "lambda_b or lambda_d zero")


def _all_zero_rule(*names: str, what: str, exclusive: bool = False, anywhere: bool = False) -> Any:
    """A rule for types whose identity is one kind of tensor all zero (FourierFT, OFT, VB-LoRA, gates).
    `exclusive`: every parameter of the module must be of that kind; `anywhere`: matched inside the path."""

    def rule(x: _Rule) -> Verdict:
        vals = [v for p, v in x.params.items() if any(n in p for n in names)] if anywhere else _heads(x.params, *names)
        if not vals or any(v is None for v in vals) or (exclusive and len(vals) != len(x.params)):
            return None, f"{what} without a tensor"
        moves = not all(_zero(v) for v in vals)
        return moves, (f"nonzero {what}" if moves else f"{what} zero")

    return rule


def _rule_boft(x: _Rule) -> Verdict:
    rs, ss = _heads(x.params, "boft_R"), _heads(x.params, "boft_s")
    if not rs or not ss or any(v is None for v in rs + ss) or len(rs) + len(ss) != len(x.params):
        return None, "BOFT parameters without a tensor"
    moves = not (all(_zero(v) for v in rs) and all(_ones(v) for v in ss))
    return moves, ("rotation or scale moves" if moves else "identity rotation and unit scale")


def _rule_hra(x: _Rule) -> Verdict:
    u = x.params.get("hra_u")
    if u is None:
        return None, "HRA vectors without a tensor (PEFT's init: the identity only up to rounding)"
    return x.layers.hra_moves(x.module, u)


def _rule_prompt(x: _Rule) -> Verdict:
    return True, "virtual tokens are attended to"


_RULES: dict[str, Any] = {
    "LORA": _rule_lora,
    "ADALORA": _rule_adalora,
    "IA3": _rule_ia3,
    "LOHA": _rule_loha_lokr,
    "LOKR": _rule_loha_lokr,
    "VERA": _rule_vera,
    "BOFT": _rule_boft,
    "HRA": _rule_hra,
    "FOURIERFT": _all_zero_rule("fourierft_spectrum", what="FourierFT spectrum"),
    "OFT": _all_zero_rule("oft_R", "oft_embedding_R", what="OFT skew parameters", exclusive=True),
    "VBLORA": _all_zero_rule("vblora_vector_bank", what="VB-LoRA vector bank"),
    "ADAPTION_PROMPT": _all_zero_rule("adaption_gate", what="adaption gates", anywhere=True),
    **{t: _rule_prompt for t in ("PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING", "CPT")},
}


def _module_verdict(t: str, x: _Rule) -> Verdict:
    init_key = "init_lora_weights" if t == "ADALORA" else "init_weights"
    if (
        t in _IDENTITY_INIT
        and x.params
        and all(v is None for v in x.params.values())
        and x.raw.get(init_key, True) is True
    ):
        return False, "no tensor: PEFT's identity initialisation"  # a created module that got no tensor at all
    rule = _RULES.get(t)
    return rule(x) if rule is not None else (None, f"no identity rule for peft_type {t}")


def identity_verdict(
    peft_type: str, raw_config: dict[str, Any], modules: dict[str, Params], layers: Layers | None = None
) -> tuple[bool | None, list[str], str]:
    """(changes?, zero modules, reason) for tensors grouped by module: {module: {param path: values or
    None when the parameter got no tensor}}. A parameter path is relative to its module (`lora_B.weight`).
    `layers`: the replayed layers and the base's weights, for the rules that need them (DoRA, HRA)."""
    t = peft_type.upper()
    raw = {**raw_config, "peft_type": t}
    alpha = raw_config.get("lora_alpha", raw_config.get("alpha"))
    scaling_zero = alpha == 0 and not raw_config.get("alpha_pattern")
    found: dict[bool | None, list[tuple[str, str]]] = {True: [], False: [], None: []}
    for mod, params in modules.items():
        verdict, reason = _module_verdict(t, _Rule(mod, params, raw, scaling_zero, layers or Layers()))
        found[verdict].append((mod, reason))
    zero = [m for m, _ in found[False]]
    if found[True]:
        return True, zero, f"{len(found[True])} module(s) change the output ({found[True][0][1]})"
    if found[None]:
        mod, why = found[None][0]
        return None, zero, f"cannot tell whether {mod} changes the output: {why}"
    return False, zero, "no module can change the output" + (f" ({found[False][0][1]})" if zero else "")


# ---------------------------------------------------------------------------------------------------------


class _Capture:
    """Records PEFT's raw load result (a pass-through wrapper around set_peft_model_state_dict)."""

    def __init__(self) -> None:
        self.missing: list[str] = []
        self.unexpected: list[str] = []
        self.called = False


@contextlib.contextmanager
def _capture_load() -> Iterator[_Capture]:
    import peft.peft_model as pm  # heavy: replay only

    # a pass-through wrapper of the function PeftModel.load_adapter calls; restored on exit

    cap = _Capture()
    original = pm.set_peft_model_state_dict  # type: ignore[attr-defined]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        cap.called = True
        cap.missing = list(getattr(result, "missing_keys", []) or [])
        cap.unexpected = list(getattr(result, "unexpected_keys", []) or [])
        return result

    pm.set_peft_model_state_dict = wrapper  # type: ignore[attr-defined]
    try:
        yield cap
    finally:
        pm.set_peft_model_state_dict = original  # type: ignore[attr-defined]


def _model_class_name(config: dict[str, Any], task_type: str | None) -> tuple[str, bool]:
    """(transformers class or Auto class name, is_auto). A bare `*Model` in `architectures` is built as
    saved; otherwise the Auto class of the task type, else the saved architecture."""
    import transformers  # heavy: replay only

    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    for a in archs:
        if a.endswith("Model") and "For" not in a and hasattr(transformers, a):
            return a, False
    task = (task_type or "").upper()
    if task in _TASK_AUTO:
        return _TASK_AUTO[task], True
    for a in archs:
        if hasattr(transformers, a):
            return a, False
    return "AutoModelForCausalLM", True


class Replayer:
    """Replays many adapters in one process: imports once, one meta skeleton per base config, and one PEFT
    load per adapter layout: what `from_pretrained` does depends on the base, the adapter's config and the
    file's keys, shapes and dtypes, never on float tensor values (they are assigned, not inspected), so the
    folds of one k-fold run (same config, same layout) share the last load and only their values are
    judged again."""

    def __init__(self) -> None:
        self._skeletons: dict[str, Any] = {}
        self._last: tuple[str, _Loaded] | None = None

    def skeleton(self, config: dict[str, Any], task_type: str | None, num_labels: int | None) -> tuple[Any, str]:
        import torch  # heavy: replay only
        import transformers
        from transformers import AutoConfig

        cfg = {
            k: v
            for k, v in config.items()
            if not k.startswith("_loravet")
            and k not in ("transformers_version", "_name_or_path", "quantization_config")
        }
        # `_loravet_as_saved`: the caller's base is the class its config.json names (a local folder taken as
        # saved), not the Auto class of the adapter's task
        name, is_auto = _model_class_name(cfg, None if config.get("_loravet_as_saved") else task_type)
        if num_labels is not None and name == "AutoModelForSequenceClassification":
            cfg["num_labels"] = num_labels
            cfg.pop("id2label", None)
            cfg.pop("label2id", None)
        key = json.dumps([cfg, name], sort_keys=True, default=str)
        if key not in self._skeletons:
            model_type = cfg.pop("model_type", None)
            if not isinstance(model_type, str):
                raise ValueError("the base's config.json has no model_type")
            hf_config = AutoConfig.for_model(model_type, **cfg)
            with warnings.catch_warnings(), torch.device("meta"):
                warnings.simplefilter("ignore")
                cls = getattr(transformers, name)
                model = cls.from_config(hf_config) if is_auto else cls(hf_config)
            model.eval()
            self._skeletons[key] = model
        return copy.deepcopy(self._skeletons[key]), type(self._skeletons[key]).__name__

    def replay(
        self,
        base_config: dict[str, Any],
        adapter_folder: Path,
        weights: WeightFile | None,
        raw_config: dict[str, Any] | None,
        num_labels: int | None = None,
        base_dir: Path | None = None,
    ) -> ReplayResult:
        raw = raw_config or {}
        too_big = _oversized(raw)
        if too_big:
            return ReplayResult("unknown", f"not replayed: {too_big} (PEFT would allocate real tensors of that size)")
        task = raw.get("task_type") if isinstance(raw.get("task_type"), str) else None
        layout = _layout_key(base_config, task, num_labels, adapter_folder, weights)
        loaded = self._last[1] if self._last is not None and layout and self._last[0] == layout else None
        # lazy: tempfile pulls in shutil and random (~9 ms of every cold check that does not replay)
        import tempfile

        with tempfile.TemporaryDirectory(prefix="loravet-replay-") as tmp:
            staged, values, note = _stage(adapter_folder, weights, Path(tmp))
            if loaded is None:
                try:
                    model, cls_name = self.skeleton(base_config, task, num_labels)
                except Exception as exc:
                    return ReplayResult(
                        "unknown",
                        "transformers cannot build the base from its config.json: "
                        f"{type(exc).__name__}: {str(exc)[:200]}",
                    )
                loaded = _load(model, cls_name, staged, raw, weights)
                self._last = (layout, loaded) if layout else None
            ctx = Layers(
                weights=weights,
                base=_base_values(base_config, base_dir),
                dtype=_load_dtype(base_config),
                init_zero_b=raw.get("init_lora_weights", True) is not False,
            )
            result = _decide(loaded, raw, values, ctx)
        result.model_class = loaded.model_class
        if note:
            result.notes.append(note)
        if base_config.get("quantization_config"):
            result.notes.append("replayed on the unquantized module tree (the quantization library is not emulated)")
        return result


# config sizes some PEFT types allocate as real (not meta) tensors: VeRA / RandLoRA projections, prompt
# encoders, FourierFT indices, ... A hostile value must not exhaust memory during a replay.
_SIZE_FIELDS = (
    "r",
    "target_r",
    "init_r",
    "num_virtual_tokens",
    "encoder_hidden_size",
    "token_dim",
    "n_frequency",
    "num_vectors",
    "vector_length",
    "boft_block_size",
    "boft_block_num",
    "boft_n_butterfly_factor",
    "oft_block_size",
    "num_transformer_submodules",
    "num_layers",
    "num_attention_heads",
)
_MAX_SIZE = 1 << 16


def _oversized(raw: dict[str, Any]) -> str | None:
    for key in _SIZE_FIELDS:
        v = raw.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and abs(v) > _MAX_SIZE:
            return f"{key}={v} is beyond any real adapter"
    for key in ("rank_pattern", "alpha_pattern"):
        pat = raw.get(key)
        if isinstance(pat, dict) and any(isinstance(v, int) and v > _MAX_SIZE for v in pat.values()):
            return f"a {key} value beyond any real adapter"
    return None


def _stage(
    folder: Path, weights: WeightFile | None, tmp: Path
) -> tuple[Path, dict[str, np.ndarray] | None, str | None]:
    """A folder PEFT may read: adapter_config.json and at most one safetensors file."""
    cfg = folder / "adapter_config.json"
    if cfg.is_file():
        (tmp / "adapter_config.json").write_bytes(cfg.read_bytes())
    if weights is None:
        return tmp, None, None
    values, errors = weights.read_all()
    if weights.format == "safetensors":
        (tmp / "adapter_model.safetensors").symlink_to(Path(weights.path).resolve())
        return tmp, (values if not errors else None), None
    # a .bin already read without unpickling: its values go to PEFT as safetensors, never the pickle
    from safetensors.numpy import save_file  # heavy-ish: replay only

    arrays: dict[str, np.ndarray] = {}
    for name, info in weights.tensors.items():
        arr = values.get(name)
        arrays[name] = np.ascontiguousarray(arr) if arr is not None else np.zeros(info.shape, dtype=np.float32)
    save_file(arrays, str(tmp / "adapter_model.safetensors"))
    if errors:
        return (
            tmp,
            None,
            f"{len(errors)} tensor value(s) of {Path(weights.path).name} cannot be read: replayed "
            "with zeros of the right shapes",
        )
    return tmp, values, "the .bin's values were decoded without unpickling and handed to PEFT as safetensors"


_SIZE = re.compile(
    r"size mismatch for (\S+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from "
    r"checkpoint, the shape in current model is torch\.Size\(\[([\d, ]*)\]\)"
)


def _shape(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _failure(exc: BaseException) -> ReplayResult:
    msg = str(exc)
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    sizes = [(_SEG.sub("", k), _shape(a), _shape(b)) for k, a, b in _SIZE.findall(msg)]
    if sizes:
        return ReplayResult(
            "fails",
            f"PEFT raises: {len(sizes)} tensor(s) do not fit their module's shape",
            failure_code="shape-mismatch",
            error=f"{type(exc).__name__}: {msg[:600]}",
            mismatched=sizes,
        )
    low = msg.lower()
    if "target module" in low and "not found" in low:
        code = "target-not-found"
    elif "can't find weights" in low:
        code = "weights-file-missing"
    else:
        code = "peft-raises"
    return ReplayResult(
        "fails",
        f"PEFT raises {type(exc).__name__}: {first[:300]}",
        failure_code=code,
        error=f"{type(exc).__name__}: {msg[:600]}",
    )


@dataclass
class _Loaded:
    """What PEFT's `from_pretrained` did with one adapter: everything but the tensor values' verdict."""

    model_class: str
    template: ReplayResult  # PEFT's raise, or its keys, warnings and overwritten base parameters
    pm: Any = None  # the PeftModel (None when PEFT raised)
    params: dict[str, Any] = field(default_factory=dict)
    landed: list[str] = field(default_factory=list)  # file keys that landed


_FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})


def _layout_key(
    base_config: dict[str, Any], task: str | None, num_labels: int | None, folder: Path, weights: WeightFile | None
) -> str:
    """Everything `from_pretrained` depends on but the values ("" when unknown: no reuse)."""
    cfg = folder / "adapter_config.json"
    if weights is None or not cfg.is_file():
        return ""
    if any(t.dtype not in _FLOAT_DTYPES for t in weights.tensors.values()):
        return ""  # integer tensors (VB-LoRA's top-k indices, ...) are used as indices on load: a value can raise
    layout = sorted((k, t.dtype, list(t.shape)) for k, t in weights.tensors.items())
    return json.dumps([base_config, task, num_labels, cfg.read_text(errors="replace"), layout], default=str)


def _load(model: Any, model_class: str, staged: Path, raw: dict[str, Any], weights: WeightFile | None) -> _Loaded:
    """The installed PEFT's real `from_pretrained` on the meta skeleton, and what it did."""
    import logging

    import transformers
    from peft import PeftModel  # heavy: replay only

    logging.getLogger("peft").setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    with warnings.catch_warnings(record=True) as caught, _capture_load() as cap:
        warnings.simplefilter("always")
        try:
            pm = PeftModel.from_pretrained(model, str(staged), low_cpu_mem_usage=True)
        except Exception as exc:
            res = _failure(exc)
            res.warnings = _warnings(caught)
            return _Loaded(model_class, res)
    res = ReplayResult("loads", "")
    res.warnings = _warnings(caught)
    peft_type = str(raw.get("peft_type") or "LORA").upper()
    params = dict(pm.named_parameters(remove_duplicate=False))
    res.missing_keys = sorted(_SEG.sub("", k) for k in adapter_missing(cap.missing, peft_type))
    # prompt-learning embeddings are loaded into the prompt encoder by a second, strict load_state_dict
    res.unexpected_keys = sorted(
        _SEG.sub("", k) for k in cap.unexpected if not (peft_type in _PROMPT_TYPES and k == "prompt_embeddings")
    )
    file_keys = list(weights.tensors) if weights is not None else []
    unexpected = set(res.unexpected_keys)
    landed = [k for k in file_keys if k not in unexpected]
    res.matched = len(landed) if cap.called else None
    # base parameters a file tensor replaced: not adapter parameters, no longer meta after assign=True
    res.overwritten_base = sorted(n for n, p in params.items() if not _SEG.search(n) and p.device.type != "meta")
    return _Loaded(model_class, res, pm, params, landed)


def _decide(loaded: _Loaded, raw: dict[str, Any], values: dict[str, np.ndarray] | None, ctx: Layers) -> ReplayResult:
    """The outcome: PEFT's raise, or whether this file's values change the output (and how the keys landed)."""
    res = copy.deepcopy(loaded.template)
    if loaded.pm is None:
        return res
    peft_type = str(raw.get("peft_type") or "LORA").upper()
    decide = _effect(loaded.pm, loaded.params, peft_type, raw, values, loaded.landed, res, ctx)
    if decide is None:
        res.outcome = "unknown"
    elif decide is False:
        res.outcome = "inert"
    elif res.missing_keys or res.unexpected_keys:
        res.outcome = "partial"
    else:
        res.outcome = "loads"
    return res


def adapter_missing(missing: list[str], peft_type: str) -> list[str]:
    """PEFT's own notion of a missing adapter key (PeftModel.load_adapter's filter: the tuner's parameter
    prefix and the adapter name, minus shared references), plus modules_to_save / trainable-token copies
    (SPEC: `missing` counts those too)."""
    from peft.mapping import PEFT_TYPE_TO_PREFIX_MAPPING  # heavy: replay only
    from peft.utils.peft_types import PeftType

    try:
        prefix = PEFT_TYPE_TO_PREFIX_MAPPING.get(PeftType(peft_type), "")
    except ValueError:
        prefix = ""
    shared = ("vblora_vector_bank", "prompt_encoder", ".tinylora_v.")
    return [
        k
        for k in missing
        if _SEG.search(k)
        and not any(s in k for s in shared)
        and ((prefix and prefix in k) or "modules_to_save" in k or "trainable_tokens" in k)
    ]


def _warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    keep = []
    for w in caught:
        text = str(w.message)
        if "deprecated" in text or "copying from a non-meta parameter" in text:
            continue
        keep.append(text[:300])
    return keep[:10]


@dataclass
class _Grouped:
    """The replayed model's adapter parameters, grouped by the module (tuner layer) they belong to."""

    modules: dict[str, Params] = field(default_factory=dict)  # module -> param path -> file value (None: none)
    file_keys: dict[str, dict[str, str]] = field(default_factory=dict)  # module -> param path -> file key
    layers: dict[str, Any] = field(default_factory=dict)  # module -> the replayed tuner layer
    claimed: set[str] = field(default_factory=set)  # file keys that landed on a tuner layer
    aux: list[str] = field(default_factory=list)  # modules_to_save / trainable-token copies (file-key prefixes)


def _file_key(full: str, rel: str, landed: set[str]) -> str:
    """The adapter file's key for a PeftModel parameter (`...lora_A.default.weight`)."""
    key = _SEG.sub("", full)
    if key not in landed and key.endswith(".weight") and key[:-7] in landed:
        key = key[:-7]  # PEFT saves a DoRA magnitude as `...lora_magnitude_vector`, no `.weight`
    if key not in landed and full in landed:
        key = full  # a file that kept the adapter name (`lora_A.default.weight`): PEFT loads it as is
    if key not in landed and rel.startswith("vblora_vector_bank"):
        key = next((k for k in landed if k.endswith("vblora_vector_bank")), key)  # one bank, shared
    return key


def _group(pm: Any, params: dict[str, Any], landed: set[str], values: dict[str, np.ndarray]) -> _Grouped:
    from peft.tuners.tuners_utils import BaseTunerLayer  # heavy: replay only

    g = _Grouped()
    tuners: dict[str, Any] = {}
    for mname, mod in pm.named_modules():
        if isinstance(mod, BaseTunerLayer):
            tuners[mname] = mod
        elif type(mod).__name__ in ("ModulesToSaveWrapper", "TrainableTokensWrapper"):
            g.aux.append(_SEG.sub("", mname))
    for full in params:  # one pass over the parameters; each adapter one belongs to its nearest tuner layer
        if not _SEG.search(full):
            continue
        parts = full.split(".")
        owner = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in tuners), None)
        if owner is None or _role(full[len(owner) + 1 :], tuple(tuners[owner].adapter_layer_names)) is None:
            continue
        rel = _SEG.sub("", full[len(owner) + 1 :])
        key = _file_key(full, rel, landed)
        g.claimed.add(key)
        module = _SEG.sub("", owner).removeprefix(PREFIX)
        g.layers[module] = tuners[owner]
        g.modules.setdefault(module, {})[rel] = values.get(key) if key in landed else None
        if key in landed:
            g.file_keys.setdefault(module, {})[rel] = key
    return g


def _effect(
    pm: Any,
    params: dict[str, Any],
    peft_type: str,
    raw: dict[str, Any],
    values: dict[str, np.ndarray] | None,
    landed: list[str],
    res: ReplayResult,
    ctx: Layers,
) -> bool | None:
    """True: the output changes; False: it cannot; None: cannot tell (res.reason says why). `ctx` holds the
    adapter's weight file and the base's weights (when local); the replayed layers are added here."""
    if values is None:
        res.reason = "PEFT loads it, but the tensor values cannot be read: whether it changes the output is unknown"
        return None
    g = _group(pm, params, set(landed), values)
    if peft_type in _PROMPT_TYPES:  # prompt-learning adapter tensors live in the prompt encoder
        g.modules.setdefault("prompt_encoder", {"prompt_embeddings": None})
    ctx.layers, ctx.file_keys = g.layers, g.file_keys
    changes, zero, reason = identity_verdict(peft_type, raw, g.modules, ctx)
    res.zero_modules = sorted(zero)
    res.landed_modules = len(g.modules)
    res.random_init_modules = sorted(
        m
        for m, ps in g.modules.items()
        if peft_type == "LORA" and raw.get("init_lora_weights", True) is False and any(v is None for v in ps.values())
    )
    if changes is True:
        res.reason = f"PEFT loads it and {reason}"
        return True
    # tensors that land on copies of base modules (modules_to_save, trainable token rows) or replace base
    # parameters: they change the output only where they differ from the base's own values
    other = [k for k in landed if k not in g.claimed and any(k == a or k.startswith(a + ".") for a in g.aux)]
    return _against_base(changes, reason, other + res.overwritten_base, values, ctx.base, res)


def _against_base(
    changes: bool | None,
    reason: str,
    base_like: list[str],
    values: dict[str, np.ndarray],
    base: _BaseValues | None,
    res: ReplayResult,
) -> bool | None:
    """The adapter layers' verdict (not True) combined with the tensors that replace base values."""
    differs = _differs_from_base(base_like, values, base) if base_like else False
    if differs is True:
        res.reason = (
            f"PEFT loads it and {len(base_like)} tensor(s) replace base values with different ones "
            "(modules_to_save copies, token rows or base parameters; compared with the base's weights)"
        )
        return True
    if differs is None:
        res.reason = (
            f"PEFT loads it; {len(base_like)} tensor(s) replace base values (modules_to_save copies, "
            "token rows or base parameters): whether they differ from the base needs the base's weights"
        )
        return None
    res.reason = f"PEFT loads it; {reason}" if changes is None else f"PEFT loads it, but {reason}"
    return changes


_DEFAULT = Replayer()


def replay_load(
    base_config: dict[str, Any],
    adapter_folder: Path,
    weights: WeightFile | None,
    raw_config: dict[str, Any] | None,
    num_labels: int | None = None,
    base_dir: Path | None = None,
) -> ReplayResult:
    """Replay with the process-wide Replayer (its skeleton cache is shared by every adapter). `base_dir`: a
    local base folder whose safetensors weights may be read, only for the tensors a decision needs."""
    with warnings.catch_warnings():  # tqdm.auto's "IProgress not found" in a notebook without ipywidgets
        warnings.filterwarnings("ignore", message=".*IProgress not found.*")
        import peft  # noqa: F401  heavy: replay only (first import here, under the filter)
        import transformers  # noqa: F401
    return _DEFAULT.replay(base_config, adapter_folder, weights, raw_config, num_labels, base_dir)


def _base_values(config: dict[str, Any], base_dir: Path | None) -> _BaseValues | None:
    """The base's own tensors, read one at a time when a decision needs them (the predictor's reader)."""
    if base_dir is None or not base_dir.is_dir():
        return None
    arch = BaseArchitecture(
        name=str(base_dir),
        model_type=str(config.get("model_type", "")),
        num_layers=0,
        hidden_size=0,
        modules=[],
        source="local",
        output_embedding=None,
        config=config,
        quantization="quantized" if config.get("quantization_config") else None,
        weights_folder=str(base_dir),
    )
    return _BaseValues(arch)


def _load_dtype(config: dict[str, Any]) -> str | None:
    """The dtype `from_pretrained` loads the base in by default (`dtype="auto"`: its config's)."""
    v = config.get("dtype", config.get("torch_dtype"))
    return v if isinstance(v, str) else None


def _differs_from_base(keys: list[str], values: dict[str, np.ndarray], base: _BaseValues | None) -> bool | None:
    """Whether any of these file tensors (named as in the adapter file, or as PeftModel parameters) differs
    from the base's own tensor: True / False, or None when the base's weights are not at hand."""
    if base is None:
        return None
    for key in keys:
        file_val = values.get(key)
        base_val = base.get(key.removeprefix(PREFIX))
        if file_val is None or base_val is None:
            return None
        if base_val.shape != file_val.shape or not np.array_equal(base_val, file_val):
            return True
    return False


# ---------------------------------------------------------------------------------------------------------
# Into the report: load_outcome, keys, verdict and findings with the existing codes.


def replay_into_report(
    report: Any,
    folder: Path,
    weights: WeightFile | None,
    raw_config: dict[str, Any] | None,
    base_config: dict[str, Any],
    base_name: str,
    num_labels: int | None,
    base_dir: Path | None = None,
) -> ReplayResult:
    """Replay one adapter and write the verdict into `report` (an AdapterReport), replacing the
    predictor's load findings."""
    res = replay_load(base_config, folder, weights, raw_config, num_labels, base_dir)
    report.findings = [
        f
        for f in report.findings
        if f.code not in _PREDICTOR_LOAD_CODES or (f.code == "unsupported-adapter-type" and "format" in f.evidence)
    ]
    report.load_outcome = res.outcome
    report.keys = res.keys_json()
    report.verdict = {"source": "replayed", "peft": peft_version()}
    report.extra["load_reason"] = res.reason
    replay_info: dict[str, Any] = {"model_class": res.model_class}
    if res.warnings:
        replay_info["peft_warnings"] = res.warnings
    if res.notes:
        replay_info["notes"] = res.notes
    report.extra["replay"] = replay_info
    if res.outcome == "fails":
        _failure_findings(report, res, folder, weights, base_name)
        return res
    if res.outcome == "unknown":
        report.add(make_finding("load-undecided", res.reason, base=base_name))
    add_load_findings(
        report,
        LoadKeys(
            missing_keys=res.missing_keys,
            missing_modules=sorted({_module_of(k) for k in res.missing_keys}),
            unexpected_keys=res.unexpected_keys,
            overwritten_base=res.overwritten_base,
            random_init_modules=res.random_init_modules,
            zero_modules=res.zero_modules,
            landed_modules=res.landed_modules,
        ),
        base_name,
    )
    return res


def _failure_findings(report: Any, res: ReplayResult, folder: Path, weights: WeightFile | None, base_name: str) -> None:
    """PEFT raised: the finding that says why, in the predictor's words where it has them."""
    code = res.failure_code or "peft-raises"
    if weights is None and not any((folder / f).exists() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        report.add(
            make_finding(
                "weights-file-missing",
                "neither adapter_model.safetensors nor adapter_model.bin is present: PEFT raises",
                error=res.error,
            )
        )
        return
    if code == "shape-mismatch":
        message = res.reason
        if res.mismatched:  # the first one, as the predictor says it: which tensor, which shapes
            k, a, b = res.mismatched[0]
            message += f", e.g. {k} is {list(a)} where the base needs {list(b)}"
        report.add(
            make_finding(
                "shape-mismatch",
                message,
                count=len(res.mismatched),
                examples=[{"tensor": k, "file_shape": a, "base_shape": b} for k, a, b in res.mismatched[:8]],
            )
        )
    else:
        report.add(make_finding(code, res.reason, error=res.error, base=base_name))


_PREDICTOR_LOAD_CODES = frozenset(
    {
        "shape-mismatch",
        "target-not-found",
        "invalid-config",
        "weights-file-missing",
        "missing-weights",
        "unused-weights",
        "base-weights-overwritten",
        "random-init-modules",
        "zero-update",
        "unsupported-adapter-type",
        "modules-to-save-missing",
        "zero-update-partial",
    }
)


def _module_of(key: str) -> str:
    key = key.removeprefix(PREFIX)
    m = re.search(
        r"\.(lora_|ia3_|hada_|lokr_|vera_|oft_|boft_|fourierft_|vblora_|hra_|modules_to_save|"
        r"trainable_tokens|ln_tuning_)",
        key,
    )
    return key[: m.start()] if m else key

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
  A type without a rule, or a decision that needs the base's weights, gives ``unknown`` with the reason.

Only safe bytes reach PEFT: the adapter's safetensors file, or a .bin whose pickle loravet already read
without unpickling (its values, decoded by loravet's own reader, are written to a temporary
safetensors file). PEFT never sees a .bin.

torch, transformers and peft are imported inside the functions that need them: the static path
(`loravet check` without --replay, where the predictor answers) stays free of them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import json
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loravet.adapter.tensors import WeightFile
from loravet.checks.load_findings import LoadKeys, add_load_findings

__all__ = ["ReplayResult", "Replayer", "identity_verdict", "peft_version", "replay_available", "replay_load"]

ADAPTER = "default"
PREFIX = "base_model.model."
_SEG = re.compile(r"\.default(?=\.|$)")

# the Auto class PEFT's task types are used with (peft.MODEL_TYPE_TO_PEFT_MODEL_MAPPING's classes wrap these)
_TASK_AUTO = {
    "CAUSAL_LM": "AutoModelForCausalLM", "SEQ_CLS": "AutoModelForSequenceClassification",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM", "TOKEN_CLS": "AutoModelForTokenClassification",
    "QUESTION_ANS": "AutoModelForQuestionAnswering", "FEATURE_EXTRACTION": "AutoModel",
}
# prompt-learning types: virtual tokens / prefixes are attended to, so the output always changes
# types whose default initialisation (init_weights / init_lora_weights true) leaves the output unchanged
# (each checked against PEFT in tests/test_differential.py::test_identity_rule_matches_peft_initialisation)
_IDENTITY_INIT = frozenset({"LOHA", "LOKR", "OFT", "BOFT", "VERA", "ADALORA"})
_PROMPT_TYPES = frozenset({"PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"})


def replay_available() -> bool:
    """torch, transformers and peft are installed (found without importing them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft"))


@functools.cache
def peft_version() -> str | None:
    """The installed peft's version (what a replay runs), looked up once per process."""
    try:
        from importlib.metadata import version

        return version("peft")
    except Exception:
        return None


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
            return {"matched": None, "missing": None, "unexpected": None,
                    "shape_mismatch": len(self.mismatched) if self.mismatched else None}
        if self.matched is None:
            return {"matched": None, "missing": None, "unexpected": None, "shape_mismatch": None}
        return {"matched": self.matched, "missing": len(self.missing_keys), "unexpected": len(self.unexpected_keys),
                "shape_mismatch": 0}


# ---------------------------------------------------------------------------------------------------------
# "Changes nothing": one rule per PEFT type, on the values of the tensors that land, module by module.
# Each rule is the negation of the type's identity initialisation in PEFT (tested against it in
# tests/test_differential.py). True: this module changes the output; False: it cannot; None: cannot tell.

def _zero(a: np.ndarray | None) -> bool:
    return a is not None and not np.any(a)


def _ones(a: np.ndarray | None) -> bool:
    return a is not None and bool(np.all(a == 1))


def _role(param: str, names: tuple[str, ...]) -> str | None:
    """The adapter-layer name a parameter path (relative to its module) belongs to."""
    head = param.split(".", 1)[0]
    return head if head in names else None


def _lora_module(roles: dict[str, np.ndarray | None], scaling_zero: bool, init: Any) -> tuple[bool | None, str]:
    """LoRA (and its variants DoRA, lora_bias, KaSA, BD-LoRA): delta = scale * B diag? A (+ B bias)."""
    default_init = init is True or (isinstance(init, str) and init.lower() == "gaussian")
    def value(name: str) -> tuple[str, np.ndarray | None]:
        if name in roles:
            return "file", roles[name]
        return "init", None

    a_src, a = value("A")
    b_src, b = value("B")
    if scaling_zero:
        return False, "scaling is 0"
    if (a_src == "init" or b_src == "init") and not default_init:
        return (True, "random init") if init is False else (None, f"init_lora_weights={init!r}")
    b_zero = _zero(b) if b_src == "file" else True  # PEFT's default init: B zero
    a_zero = _zero(a) if a_src == "file" else False
    diag = roles.get("diag")
    product_zero = b_zero or a_zero or _zero(diag)
    bias = roles.get("bias")
    bias_moves = bias is not None and not _zero(bias)
    if "magnitude" in roles and product_zero and not bias_moves:
        return None, "DoRA magnitude with a zero update: inert only if it equals the base's weight norms"
    if not product_zero or bias_moves:
        return True, "nonzero update"
    return False, "zero update"


_LORA_ROLES = {"lora_A": "A", "lora_embedding_A": "A", "lora_B": "B", "lora_embedding_B": "B",
               "lora_magnitude_vector": "magnitude", "lora_diag": "diag"}


def identity_verdict(peft_type: str, raw_config: dict[str, Any], modules: dict[str, dict[str, np.ndarray | None]],
                     ) -> tuple[bool | None, list[str], str]:
    """(changes?, zero modules, reason) for tensors grouped by module: {module: {param path: values or
    None when the parameter got no tensor}}. A parameter path is relative to its module (`lora_B.weight`)."""
    t = peft_type.upper()
    changes: list[str] = []
    zero: list[str] = []
    undecided: list[str] = []
    why: dict[str, str] = {}
    alpha = raw_config.get("lora_alpha", raw_config.get("alpha"))
    scaling_zero = alpha == 0 and not raw_config.get("alpha_pattern")
    init_key = "init_lora_weights" if t == "ADALORA" else "init_weights"
    for mod, params in modules.items():
        verdict: bool | None
        reason = ""
        if t in _IDENTITY_INIT and params and all(v is None for v in params.values()) \
                and raw_config.get(init_key, True) is True:
            # a created module that got no tensor at all keeps PEFT's identity initialisation
            verdict, reason = False, "no tensor: PEFT's identity initialisation"
        elif t == "LORA" and raw_config.get("kasa_config"):
            # KaSA truncates the base weight's r smallest singular components when the adapter is added
            verdict, reason = True, "KaSA truncates the base weight"
        elif t in ("LORA", "ADALORA"):
            roles: dict[str, np.ndarray | None] = {}
            for p, v in params.items():
                head = p.split(".", 1)[0]
                role = _LORA_ROLES.get(head) if head != "lora_E" else "diag"
                if role is None:
                    continue
                if head in ("lora_B", "lora_embedding_B") and p.endswith(".bias"):
                    role = "bias"
                if v is None:
                    continue  # no tensor: the init value (handled by _lora_module)
                roles[role] = v
            if t == "ADALORA" and any(v is None for v in params.values()):
                verdict, reason = None, "AdaLoRA parameters without a tensor"
            else:
                verdict, reason = _lora_module(roles, scaling_zero,
                                               raw_config.get("init_lora_weights", True) if t == "LORA" else True)
        elif t == "IA3":
            vals = [v for v in params.values()]
            if any(v is None for v in vals):
                verdict = None if raw_config.get("init_ia3_weights", True) is not True else (
                    not all(_ones(v) for v in vals if v is not None))
                reason = "IA3 vectors without a tensor start at one" if verdict is not None else "init_ia3_weights"
            else:
                verdict = not all(_ones(v) for v in vals)
                reason = "IA3 vectors all one" if not verdict else "IA3 vectors differ from one"
        elif t in ("LOHA", "LOKR"):
            if any(v is None for v in params.values()):
                verdict, reason = None, f"{t} factors without a tensor"
            else:
                def z(name: str, ps: dict[str, np.ndarray | None] = params) -> bool:
                    return any(_zero(v) for p, v in ps.items() if p.split(".", 1)[0] == name)
                if t == "LOHA":
                    first = z("hada_w1_a") or z("hada_w1_b") or z("hada_t1")
                    second = z("hada_w2_a") or z("hada_w2_b") or z("hada_t2")
                else:
                    first = z("lokr_w1") or z("lokr_w1_a") or z("lokr_w1_b")
                    second = z("lokr_w2") or z("lokr_w2_a") or z("lokr_w2_b") or z("lokr_t2")
                verdict = not (first or second) and not scaling_zero
                reason = "a factor is zero" if not verdict else "both factors nonzero"
        elif t == "VERA":
            if any(v is None for v in params.values()):
                verdict, reason = None, "VeRA vectors without a tensor"
            else:
                lb = [v for p, v in params.items() if p.startswith("vera_lambda_b")]
                ld = [v for p, v in params.items() if p.startswith("vera_lambda_d")]
                verdict = not (any(_zero(v) for v in lb) or any(_zero(v) for v in ld))
                reason = "lambda_b or lambda_d zero" if not verdict else "nonzero lambda_b and lambda_d"
        elif t == "FOURIERFT":
            vals = [v for p, v in params.items() if p.startswith("fourierft_spectrum")]
            if not vals or any(v is None for v in vals):
                verdict, reason = None, "FourierFT spectrum without a tensor"
            else:
                verdict = not all(_zero(v) for v in vals)
                reason = "spectrum zero" if not verdict else "spectrum nonzero"
        elif t == "OFT":
            vals = [v for p, v in params.items() if p.split(".", 1)[0] in ("oft_R", "oft_embedding_R")]
            if not vals or any(v is None for v in vals) or len(vals) != len(params):
                verdict, reason = None, "OFT parameters without a rule"
            else:
                verdict = not all(_zero(v) for v in vals)
                reason = "skew parameters zero: rotation is the identity" if not verdict else "nonzero rotation"
        elif t == "BOFT":
            rs = [v for p, v in params.items() if p.startswith("boft_R")]
            ss = [v for p, v in params.items() if p.startswith("boft_s")]
            if not rs or not ss or any(v is None for v in rs + ss) or len(rs) + len(ss) != len(params):
                verdict, reason = None, "BOFT parameters without a tensor"
            else:
                verdict = not (all(_zero(v) for v in rs) and all(_ones(v) for v in ss))
                reason = "identity rotation and unit scale" if not verdict else "rotation or scale moves"
        elif t == "VBLORA":
            banks = [v for p, v in params.items() if p.startswith("vblora_vector_bank")]
            if not banks or any(v is None for v in banks):
                verdict, reason = None, "VB-LoRA vector bank without a tensor"
            else:
                verdict = not all(_zero(v) for v in banks)
                reason = "vector bank zero" if not verdict else "nonzero vector bank"
        elif t == "HRA":
            # the product of the Householder reflections, computed by the replayed layer's own
            # get_delta_weight from the file's hra_u (see _effect): exactly the identity or not
            flag = params.get("hra_delta_is_identity")
            if flag is None:
                verdict, reason = None, ("HRA vectors without a tensor, or reflections that compose to the identity "
                                         "only up to rounding (PEFT's own initialisation)")
            else:
                verdict = not bool(flag)
                reason = "the reflections compose to the identity" if not verdict else "the reflections rotate"
        elif t == "ADAPTION_PROMPT":
            gates = [v for p, v in params.items() if "adaption_gate" in p]
            if not gates or any(v is None for v in gates):
                verdict, reason = None, "adaption gate without a tensor"
            else:
                verdict = not all(_zero(v) for v in gates)
                reason = "gates zero" if not verdict else "nonzero gates"
        elif t in _PROMPT_TYPES:
            verdict, reason = True, "virtual tokens are attended to"
        else:
            verdict, reason = None, f"no identity rule for peft_type {t}"
        why[mod] = reason
        if verdict is True:
            changes.append(mod)
        elif verdict is False:
            zero.append(mod)
        else:
            undecided.append(mod)
    if changes:
        return True, zero, f"{len(changes)} module(s) change the output ({why[changes[0]]})"
    if undecided:
        return None, zero, f"cannot tell whether {undecided[0]} changes the output: {why[undecided[0]]}"
    return False, zero, "no module can change the output" + (f" ({why[zero[0]]})" if zero else "")


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
    """Replays many adapters in one process: imports once, one meta skeleton per base config."""

    def __init__(self) -> None:
        self._skeletons: dict[str, Any] = {}

    def skeleton(self, config: dict[str, Any], task_type: str | None, num_labels: int | None) -> tuple[Any, str]:
        import torch  # heavy: replay only
        import transformers
        from transformers import AutoConfig

        cfg = {k: v for k, v in config.items() if not k.startswith("_loravet")
               and k not in ("transformers_version", "_name_or_path", "quantization_config")}
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

    def replay(self, base_config: dict[str, Any], adapter_folder: Path, weights: WeightFile | None,
               raw_config: dict[str, Any] | None, num_labels: int | None = None,
               base_dir: Path | None = None) -> ReplayResult:
        raw = raw_config or {}
        too_big = _oversized(raw)
        if too_big:
            return ReplayResult("unknown", f"not replayed: {too_big} (PEFT would allocate real tensors of that size)")
        task = raw.get("task_type") if isinstance(raw.get("task_type"), str) else None
        try:
            model, cls_name = self.skeleton(base_config, task, num_labels)
        except Exception as exc:
            return ReplayResult("unknown", f"transformers cannot build the base from its config.json: "
                                f"{type(exc).__name__}: {str(exc)[:200]}")
        with tempfile.TemporaryDirectory(prefix="loravet-replay-") as tmp:
            staged, values, note = _stage(adapter_folder, weights, Path(tmp))
            result = _run_peft(model, staged, raw, values, weights, base_dir)
        result.model_class = cls_name
        if note:
            result.notes.append(note)
        if base_config.get("quantization_config"):
            result.notes.append("replayed on the unquantized module tree (the quantization library is not "
                                "emulated)")
        return result


# config sizes some PEFT types allocate as real (not meta) tensors: VeRA / RandLoRA projections, prompt
# encoders, FourierFT indices, ... A hostile value must not exhaust memory during a replay.
_SIZE_FIELDS = ("r", "target_r", "init_r", "num_virtual_tokens", "encoder_hidden_size", "token_dim", "n_frequency",
                "num_vectors", "vector_length", "boft_block_size", "boft_block_num", "boft_n_butterfly_factor",
                "oft_block_size", "num_transformer_submodules", "num_layers", "num_attention_heads")
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


def _stage(folder: Path, weights: WeightFile | None, tmp: Path) -> tuple[Path, dict[str, np.ndarray] | None,
                                                                          str | None]:
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
        return tmp, None, f"{len(errors)} tensor value(s) of {Path(weights.path).name} cannot be read: replayed " \
                          "with zeros of the right shapes"
    return tmp, values, "the .bin's values were decoded without unpickling and handed to PEFT as safetensors"


_SIZE = re.compile(r"size mismatch for (\S+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from "
                   r"checkpoint, the shape in current model is torch\.Size\(\[([\d, ]*)\]\)")


def _shape(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _failure(exc: BaseException) -> ReplayResult:
    msg = str(exc)
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    sizes = [(_SEG.sub("", k), _shape(a), _shape(b)) for k, a, b in _SIZE.findall(msg)]
    if sizes:
        return ReplayResult("fails", f"PEFT raises: {len(sizes)} tensor(s) do not fit their module's shape",
                            failure_code="shape-mismatch", error=f"{type(exc).__name__}: {msg[:600]}",
                            mismatched=sizes)
    low = msg.lower()
    if "target module" in low and "not found" in low:
        code = "target-not-found"
    elif "can't find weights" in low:
        code = "weights-file-missing"
    else:
        code = "peft-raises"
    return ReplayResult("fails", f"PEFT raises {type(exc).__name__}: {first[:300]}", failure_code=code,
                        error=f"{type(exc).__name__}: {msg[:600]}")


def _run_peft(model: Any, staged: Path, raw: dict[str, Any], values: dict[str, np.ndarray] | None,
              weights: WeightFile | None, base_dir: Path | None) -> ReplayResult:
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
            return res
    res = ReplayResult("loads", "")
    res.warnings = _warnings(caught)
    peft_type = str(raw.get("peft_type") or "LORA").upper()
    params = dict(pm.named_parameters(remove_duplicate=False))
    res.missing_keys = sorted(_SEG.sub("", k) for k in adapter_missing(cap.missing, peft_type))
    # prompt-learning embeddings are loaded into the prompt encoder by a second, strict load_state_dict
    res.unexpected_keys = sorted(_SEG.sub("", k) for k in cap.unexpected
                                 if not (peft_type in _PROMPT_TYPES and k == "prompt_embeddings"))
    file_keys = list(weights.tensors) if weights is not None else []
    unexpected = set(res.unexpected_keys)
    landed = [k for k in file_keys if k not in unexpected]
    res.matched = len(landed) if cap.called else None
    # base parameters a file tensor replaced: not adapter parameters, no longer meta after assign=True
    res.overwritten_base = sorted(n for n, p in params.items() if not _SEG.search(n) and p.device.type != "meta")
    decide = _effect(pm, params, peft_type, raw, values, landed, res, base_dir)
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
    return [k for k in missing if _SEG.search(k) and not any(s in k for s in shared)
            and ((prefix and prefix in k) or "modules_to_save" in k or "trainable_tokens" in k)]


def _warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    keep = []
    for w in caught:
        text = str(w.message)
        if "deprecated" in text or "copying from a non-meta parameter" in text:
            continue
        keep.append(text[:300])
    return keep[:10]


def _effect(pm: Any, params: dict[str, Any], peft_type: str, raw: dict[str, Any],
            values: dict[str, np.ndarray] | None, landed: list[str], res: ReplayResult,
            base_dir: Path | None) -> bool | None:
    """True: the output changes; False: it cannot; None: cannot tell (res.reason says why)."""
    from peft.tuners.tuners_utils import BaseTunerLayer  # heavy: replay only

    if values is None:
        res.reason = "PEFT loads it, but the tensor values cannot be read: whether it changes the output is unknown"
        return None
    landed_set = set(landed)
    modules: dict[str, dict[str, np.ndarray | None]] = {}
    claimed: set[str] = set()
    tuners: dict[str, tuple[str, ...]] = {}
    aux: list[str] = []
    for mname, mod in pm.named_modules():
        if isinstance(mod, BaseTunerLayer):
            tuners[mname] = tuple(getattr(mod, "adapter_layer_names", ()))
        elif type(mod).__name__ in ("ModulesToSaveWrapper", "TrainableTokensWrapper"):
            aux.append(mname)
    for full in params:  # one pass over the parameters; each adapter one belongs to its nearest tuner layer
        if not _SEG.search(full):
            continue
        parts = full.split(".")
        owner = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in tuners),
                     None)
        if owner is None:
            continue
        pname = full[len(owner) + 1:]
        if _role(pname, tuners[owner]) is None:
            continue
        file_key = _SEG.sub("", full)
        if file_key not in landed_set and file_key.endswith(".weight") and file_key[:-7] in landed_set:
            file_key = file_key[:-7]  # PEFT saves a DoRA magnitude as `...lora_magnitude_vector`, no `.weight`
        if file_key not in landed_set and full in landed_set:
            file_key = full  # a file that kept the adapter name (`lora_A.default.weight`): PEFT loads it as is
        claimed.add(file_key)
        rel = _SEG.sub("", pname)
        if file_key not in landed_set and rel.startswith("vblora_vector_bank"):
            file_key = next((k for k in landed_set if k.endswith("vblora_vector_bank")), file_key)
        modules.setdefault(_SEG.sub("", owner).removeprefix(PREFIX), {})[rel] = (
            values.get(file_key) if file_key in landed_set else None)
    if peft_type == "HRA":
        _hra_identity(pm, tuners, modules)
    # prompt-learning / model-level adapter tensors (prompt embeddings, vector banks, ...)
    if peft_type in _PROMPT_TYPES:
        modules.setdefault("prompt_encoder", {"prompt_embeddings": None})
    # tensors that land on copies of base modules (modules_to_save, trainable token rows): they change the
    # output only where they differ from the base's own values, which a weightless replay cannot see
    aux_keys = [_SEG.sub("", n) for n in aux]
    other = [k for k in landed if k not in claimed
             and any(k == a or k.startswith(a + ".") for a in aux_keys)]
    changes, zero, reason = identity_verdict(peft_type, raw, modules)
    res.zero_modules = sorted(zero)
    res.landed_modules = len(modules)
    res.random_init_modules = sorted(m for m, ps in modules.items()
                                     if peft_type == "LORA" and raw.get("init_lora_weights", True) is False
                                     and any(v is None for v in ps.values()))
    if changes is True:
        res.reason = f"PEFT loads it and {reason}"
        return True
    base_like = other + res.overwritten_base
    differs = _differs_from_base(base_like, values, base_dir) if base_like else False
    if differs is True:
        res.reason = (f"PEFT loads it and {len(base_like)} tensor(s) replace base values with different ones "
                      "(modules_to_save copies, token rows or base parameters; compared with the base's weights)")
        return True
    if differs is None:
        res.reason = (f"PEFT loads it; {len(other) + len(res.overwritten_base)} tensor(s) replace base values "
                      "(modules_to_save copies, token rows or base parameters): whether they differ from the base "
                      "needs the base's weights")
        return None
    if changes is None:
        res.reason = f"PEFT loads it; {reason}"
        return None
    res.reason = f"PEFT loads it, but {reason}"
    return False


_DEFAULT = Replayer()


def replay_load(base_config: dict[str, Any], adapter_folder: Path, weights: WeightFile | None,
                raw_config: dict[str, Any] | None, num_labels: int | None = None,
                base_dir: Path | None = None) -> ReplayResult:
    """Replay with the process-wide Replayer (its skeleton cache is shared by every adapter). `base_dir`: a
    local base folder whose safetensors weights may be read, only for the tensors a decision needs."""
    with warnings.catch_warnings():  # tqdm.auto's "IProgress not found" in a notebook without ipywidgets
        warnings.filterwarnings("ignore", message=".*IProgress not found.*")
        import peft  # noqa: F401  heavy: replay only (first import here, under the filter)
        import transformers  # noqa: F401
    return _DEFAULT.replay(base_config, adapter_folder, weights, raw_config, num_labels, base_dir)


def _hra_identity(pm: Any, tuners: dict[str, tuple[str, ...]], modules: dict[str, dict[str, Any]]) -> None:
    """HRA: whether each layer's rotation (PEFT's own get_delta_weight on the loaded hra_u) is exactly I."""
    import torch  # heavy: replay only

    by_name = dict(pm.named_modules())
    for owner in tuners:
        key = _SEG.sub("", owner).removeprefix(PREFIX)
        entry = modules.get(key)
        mod = by_name.get(owner)
        if entry is None or mod is None:
            continue
        if any(v is None for p, v in entry.items() if p.startswith("hra_u")):
            entry["hra_delta_is_identity"] = None
            continue
        try:
            with torch.no_grad():
                # the file's hra_u (float32, as PEFT's autocast keeps adapter weights) into the replayed layer,
                # then PEFT's own product of reflections
                mod.hra_u[ADAPTER] = torch.nn.Parameter(torch.from_numpy(np.array(entry["hra_u"], dtype=np.float32)),
                                                        requires_grad=False)
                delta = mod.get_delta_weight(ADAPTER)
            eye = torch.eye(delta.shape[0], dtype=delta.dtype)
            gap = float((delta.cpu() - eye).abs().max())
            # exactly I: inert; I up to rounding (PEFT's own symmetric init): whether the output moves depends
            # on how the base's values round, so undecided; clearly not I: it rotates
            entry["hra_delta_is_identity"] = np.array(1.0) if gap == 0 else (None if gap < 1e-5 else np.array(0.0))
        except Exception:
            entry["hra_delta_is_identity"] = None


def _differs_from_base(keys: list[str], values: dict[str, np.ndarray], base_dir: Path | None) -> bool | None:
    """Whether any of these file tensors (named as in the adapter file, or as PeftModel parameters) differs
    from the base's own tensor: True / False, or None when the base's weights are not at hand."""
    if base_dir is None or not base_dir.is_dir():
        return None
    from loravet.adapter.safetensors_file import SafetensorsError, read_safetensors

    files = []
    for f in sorted(base_dir.glob("*.safetensors"))[:64]:
        try:
            files.append(read_safetensors(f))
        except SafetensorsError:
            continue
    if not files:
        return None
    for key in keys:
        file_val = values.get(key)
        name = key.removeprefix(PREFIX)
        if file_val is None:
            return None
        holder = next((wf for wf in files if name in wf.tensors), None)
        if holder is None:
            return None
        try:
            base_val = holder.read(name)
        except (ValueError, OSError):
            return None
        if base_val.shape != file_val.shape or not np.array_equal(base_val, file_val):
            return True
    return False


# ---------------------------------------------------------------------------------------------------------
# Into the report: load_outcome, keys, verdict and findings with the existing codes.

def replay_into_report(report: Any, folder: Path, weights: WeightFile | None, raw_config: dict[str, Any] | None,
                       base_config: dict[str, Any], base_name: str, num_labels: int | None,
                       base_dir: Path | None = None) -> ReplayResult:
    """Replay one adapter and write the verdict into `report` (an AdapterReport), replacing the
    predictor's load findings."""
    from loravet.findings import make_finding

    res = replay_load(base_config, folder, weights, raw_config, num_labels, base_dir)
    report.findings = [f for f in report.findings if f.code not in _PREDICTOR_LOAD_CODES
                       or (f.code == "unsupported-adapter-type" and "format" in f.evidence)]
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
        code = res.failure_code or "peft-raises"
        if weights is None and not any((folder / f).exists() for f in ("adapter_model.safetensors",
                                                                       "adapter_model.bin")):
            report.add(make_finding("weights-file-missing", "neither adapter_model.safetensors nor "
                                    "adapter_model.bin is present: PEFT raises", error=res.error))
            return res
        if code == "shape-mismatch":
            message = res.reason
            if res.mismatched:  # the first one, as the predictor says it: which tensor, which shapes
                k, a, b = res.mismatched[0]
                message += f", e.g. {k} is {list(a)} where the base needs {list(b)}"
            report.add(make_finding("shape-mismatch", message, count=len(res.mismatched), examples=[
                {"tensor": k, "file_shape": a, "base_shape": b} for k, a, b in res.mismatched[:8]]))
        else:
            report.add(make_finding(code, res.reason, error=res.error, base=base_name))
        return res
    if res.outcome == "unknown":
        report.add(make_finding("load-undecided", res.reason, base=base_name))
    add_load_findings(report, LoadKeys(
        missing_keys=res.missing_keys, missing_modules=sorted({_module_of(k) for k in res.missing_keys}),
        unexpected_keys=res.unexpected_keys, overwritten_base=res.overwritten_base,
        random_init_modules=res.random_init_modules, zero_modules=res.zero_modules,
        landed_modules=res.landed_modules), base_name)
    return res


_PREDICTOR_LOAD_CODES = frozenset({"shape-mismatch", "target-not-found", "invalid-config", "weights-file-missing",
                                   "missing-weights", "unused-weights", "base-weights-overwritten",
                                   "random-init-modules", "zero-update", "unsupported-adapter-type",
                                   "modules-to-save-missing", "zero-update-partial"})


def _module_of(key: str) -> str:
    key = key.removeprefix(PREFIX)
    m = re.search(r"\.(lora_|ia3_|hada_|lokr_|vera_|oft_|boft_|fourierft_|vblora_|hra_|modules_to_save|"
                  r"trainable_tokens|ln_tuning_)", key)
    return key[:m.start()] if m else key

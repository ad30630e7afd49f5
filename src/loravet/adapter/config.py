"""adapter_config.json, parsed into a typed LoRA config without importing PEFT.

The parser is tolerant where PEFT is tolerant (unknown keys are kept and reported, old schemas are
recognised) and strict where PEFT raises (wrong types, invalid combinations): those become
``invalid-config`` problems that :mod:`loravet.checks.peft_load` turns into ``fails``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loravet.adapter.limits import MAX_CONFIG_BYTES, MAX_JSON_DEPTH, FileRefused, read_capped
from loravet.adapter.peft_tables import config_fields, known_peft_types, rejected_values

__all__ = ["ConfigError", "LoraAdapterConfig", "load_adapter_config", "nonfinite_numbers", "parse_adapter_config"]

# Every key a LoRA config of the snapshot's PEFT writes (the LoraConfig dataclass fields).
LORA_KEYS = frozenset(config_fields("LORA") or ())
LEGACY_KEYS = frozenset({"enable_lora", "merge_weights"})
# Keys every PeftConfig may carry whatever its type.
COMMON_KEYS = frozenset(
    {"peft_type", "task_type", "auto_mapping", "base_model_name_or_path", "revision", "inference_mode", "peft_version"}
)

LORA_TYPES = frozenset({"LORA"})


class ConfigError(ValueError):
    """adapter_config.json cannot be read as a config at all (bad JSON, not an object, ...)."""


@dataclass
class LoraAdapterConfig:
    """The fields of a PEFT LoRA config that decide what PEFT builds and loads."""

    raw: dict[str, Any]
    peft_type: str | None
    task_type: str | None
    base_model_name_or_path: str | None
    revision: str | None
    peft_version: str | None
    r: int
    lora_alpha: float
    lora_dropout: float
    use_rslora: bool
    use_dora: bool
    target_modules: list[str] | str | None
    exclude_modules: list[str] | str | None
    layers_to_transform: list[int] | int | None
    layers_pattern: list[str] | str | None
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    modules_to_save: list[str] | None
    bias: str
    lora_bias: bool
    fan_in_fan_out: bool
    init_lora_weights: bool | str
    inference_mode: bool | None
    target_parameters: list[str] | None
    trainable_token_indices: Any
    unknown_keys: list[str] = field(default_factory=list)
    legacy_keys: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Values PEFT rejects; each makes PeftModel.from_pretrained raise."""
    foreign_format: str | None = None
    """Set when the file is not a PEFT config at all (mlx-lm, AdapterHub)."""

    @property
    def is_lora(self) -> bool:
        """PEFT looks peft_type up exactly ("lora" is a KeyError there), so this is exact too."""
        return self.foreign_format is None and (self.peft_type or "") in LORA_TYPES

    @property
    def peft_type_known(self) -> bool:
        """peft_type names a config class of the snapshot's PEFT (else PEFT raises a KeyError)."""
        return self.peft_type is not None and self.peft_type in known_peft_types()

    @property
    def scaling(self) -> float | None:
        """lora_alpha / r (rsLoRA: / sqrt(r)); None where PEFT has none (r <= 0: it raises) or it is not finite."""
        value = self.scaling_for(self.r, self.lora_alpha)
        return value if math.isfinite(value) else None

    def scaling_for(self, r: int, alpha: float) -> float:
        """The scale PEFT applies; NaN for r <= 0 (PEFT raises before it uses one)."""
        if r <= 0:
            return float("nan")
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r

    def target_modules_as_written(self) -> list[str] | str | None:
        return self.raw.get("target_modules")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Larger integers in a config are not ranks or sizes any model has (and do not fit a float).
MAX_CONFIG_INT = 1 << 53


def _short(value: Any) -> str:
    big = _is_int(value) and abs(value) > MAX_CONFIG_INT
    text = f"an integer of {value.bit_length():,} bits" if big else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_float(value: Any) -> float | None:
    """A JSON number as a float (NaN and infinities kept: the checks report them); None when not a number
    or too large for a float (PEFT's arithmetic on it raises OverflowError)."""
    if not _is_number(value):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


FLOAT32_MAX = 3.4028234663852886e38


def nonfinite_numbers(cfg: LoraAdapterConfig) -> dict[str, float]:
    """lora_alpha / alpha_pattern values that are NaN or infinite, or whose scaling float32 cannot hold even
    at the largest rank the config names: PEFT loads them, multiplies each update by the scaling in the model's
    dtype (float32, bf16, fp16 all overflow at that size), and every output is Inf or NaN."""
    largest_r = max([cfg.r, *cfg.rank_pattern.values()])

    def bad_value(alpha: float) -> bool:
        if not math.isfinite(alpha):
            return True
        smallest = cfg.scaling_for(largest_r, alpha) if largest_r > 0 else float("nan")
        return math.isfinite(smallest) and abs(smallest) > FLOAT32_MAX

    bad = {"lora_alpha": cfg.lora_alpha} if bad_value(cfg.lora_alpha) else {}
    bad.update({f"alpha_pattern[{k}]": v for k, v in cfg.alpha_pattern.items() if bad_value(v)})
    return bad


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, stopping early once past `limit` (no recursion on hostile input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def read_json_file(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """Read a JSON file with size and depth caps; raises ConfigError with a one-line reason."""
    try:
        text = read_capped(path, max_bytes).decode("utf-8-sig")
    except FileRefused as exc:
        raise ConfigError(str(exc)) from exc  # the cause tells a link leaving the folder (PathEscape) apart
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text, parse_constant=lambda c: float(c))
    except RecursionError:
        raise ConfigError(f"{path.name} is nested too deeply to be a config") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:  # an integer of more than 4,300 digits: json.load (PEFT's reader) raises the same
        raise ConfigError(f"{path.name} cannot be read as JSON: {str(exc)[:120]}") from None
    if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ConfigError(f"{path.name} is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def load_adapter_config(path: Path) -> LoraAdapterConfig:
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} holds a JSON {type(data).__name__}, not an object")
    return parse_adapter_config(data)


def _str_list(value: Any, name: str, problems: list[str], allow_str: bool) -> list[str] | str | None:
    if value is None:
        return None
    if isinstance(value, str):
        if allow_str:
            return value
        return [value]
    if isinstance(value, (list, tuple, set)) and all(isinstance(v, str) for v in value):
        return list(value)
    problems.append(
        f"{name} must be a list of strings{' or a regex string' if allow_str else ''}, got {type(value).__name__}"
    )
    return None


def parse_adapter_config(data: dict[str, Any]) -> LoraAdapterConfig:
    """Parse the JSON object of an adapter_config.json (never raises on values: it records problems)."""
    foreign = _foreign_format(data)
    fields = _FieldReader(data)
    peft_type = fields.peft_type()
    lora = _lora_fields(fields, peft_type)
    _post_init_problems(lora, fields.problems)
    known = _known_keys(fields, peft_type)
    unknown = sorted(k for k in data if k not in known) if foreign is None else []
    legacy = sorted(k for k in data if k in LEGACY_KEYS)
    return LoraAdapterConfig(
        raw=data,
        peft_type=peft_type,
        task_type=fields.str_("task_type"),
        base_model_name_or_path=fields.str_("base_model_name_or_path"),
        revision=fields.str_("revision"),
        peft_version=fields.str_("peft_version"),
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        use_rslora=fields.bool_("use_rslora", False),
        use_dora=lora.use_dora,
        target_modules=lora.target_modules,
        exclude_modules=lora.exclude_modules,
        layers_to_transform=lora.layers_to_transform,
        layers_pattern=lora.layers_pattern,
        rank_pattern=lora.rank_pattern,
        alpha_pattern=lora.alpha_pattern,
        modules_to_save=lora.modules_to_save,
        bias=lora.bias,
        lora_bias=lora.lora_bias,
        fan_in_fan_out=fields.bool_("fan_in_fan_out", False),
        init_lora_weights=lora.init_lora_weights,
        inference_mode=lora.inference_mode,
        target_parameters=lora.target_parameters,
        trainable_token_indices=data.get("trainable_token_indices"),
        unknown_keys=unknown,
        legacy_keys=legacy,
        problems=fields.problems if foreign is None else [],
        foreign_format=foreign,
    )


def _foreign_format(data: Mapping[str, object]) -> str | None:
    """What the file is when it is not a PEFT config (no peft_type); None for a PEFT config."""
    if "peft_type" in data:
        return None
    if "lora_parameters" in data or "fine_tune_type" in data:
        return "mlx-lm adapter config (fine_tune_type / lora_parameters), not a PEFT adapter"
    if "model_class" in data or ("config" in data and "architecture" in str(data.get("config"))):
        return "AdapterHub (adapters library) config, not a PEFT adapter"
    return "no peft_type: not a PEFT adapter config"


class _FieldReader:
    """Typed fields of the config's JSON object: a value of the wrong type is recorded in `problems` (PEFT raises
    on it) and read as the default."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def peft_type(self) -> str | None:
        peft_type = self.data.get("peft_type")
        if peft_type is not None and not isinstance(peft_type, str):
            self.problems.append(f"peft_type must be a string, got {type(peft_type).__name__}")
            return None
        return peft_type

    def int_(self, name: str, default: int) -> int:
        value = self.data.get(name, default)
        if _is_int(value) and abs(value) <= MAX_CONFIG_INT:
            return int(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) <= MAX_CONFIG_INT:
            return int(value)
        self.problems.append(f"{name} must be an integer, got {_short(value)}")
        return default

    def number(self, name: str, default: float) -> float:
        value = self.data.get(name, default)
        if value is None:
            return default
        number = _as_float(value)
        if number is not None:
            return number
        self.problems.append(f"{name} must be a number, got {_short(value)}")
        return default

    def bool_(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        self.problems.append(f"{name} must be true or false, got {value!r}"[:200])
        return default

    def str_(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None or isinstance(value, str):
            return value
        self.problems.append(f"{name} must be a string, got {type(value).__name__}")
        return None

    def str_list(self, name: str, allow_str: bool) -> list[str] | str | None:
        return _str_list(self.data.get(name), name, self.problems, allow_str)

    def int_or_ints(self, name: str) -> list[int] | int | None:
        value = self.data.get(name)
        if value is None or _is_int(value):
            return value  # type: ignore[no-any-return]
        if isinstance(value, list) and all(_is_int(v) for v in value):
            return list(value)
        self.problems.append(f"{name} must be an integer or a list of integers")
        return None

    def pattern(self, name: str, cast: type) -> dict[str, Any]:
        value = self.data.get(name) or {}
        if not isinstance(value, dict):
            self.problems.append(f"{name} must be an object mapping module patterns to values")
            return {}
        out: dict[str, Any] = {}
        for k, v in value.items():
            number = _as_float(v)
            if number is None or (cast is int and not (math.isfinite(number) and abs(number) <= MAX_CONFIG_INT)):
                self.problems.append(f"{name}[{_short(k)}] must be a number, got {_short(v)}")
                continue
            out[str(k)] = int(v) if cast is int else number
        return out

    def choice(self, name: str, default: Any, ok: Callable[[Any], bool], expected: str) -> Any:
        """A value of a closed set (`ok`), null meaning the default."""
        value = self.data.get(name, default)
        if value is None:
            value = default
        if not ok(value):
            self.problems.append(f"{name} must be {expected}, got {value!r}"[:200])
            return default
        return value


@dataclass
class _LoraFields:
    """The LoRA fields of the config, read in the order PEFT's problems are reported."""

    r: int
    lora_alpha: float
    lora_dropout: float
    target_modules: list[str] | str | None
    exclude_modules: list[str] | str | None
    modules_to_save: list[str] | None
    layers_pattern: list[str] | str | None
    layers_to_transform: list[int] | int | None
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    bias: str
    init_lora_weights: bool | str
    inference_mode: bool | None
    use_dora: bool
    lora_bias: bool
    target_parameters: list[str] | None


def _lora_fields(fields: _FieldReader, peft_type: str | None) -> _LoraFields:
    problems = fields.problems
    r = fields.int_("r", 8) if fields.data.get("r") is not None or peft_type == "LORA" else 8
    alpha = fields.number("lora_alpha", 8.0)
    if r <= 0 and peft_type == "LORA":
        problems.append(f"r must be a positive integer, got {r}")
    dropout = fields.number("lora_dropout", 0.0)
    if dropout > 1:  # PEFT builds nn.Dropout(p) for p > 0, and torch raises for p > 1 (Infinity included)
        problems.append(f"lora_dropout must be between 0 and 1, got {dropout}")
    target_modules = fields.str_list("target_modules", allow_str=True)
    exclude_modules = fields.str_list("exclude_modules", allow_str=True)
    modules_to_save = fields.str_list("modules_to_save", allow_str=False)
    layers_pattern = fields.str_list("layers_pattern", allow_str=True)
    layers_to_transform = fields.int_or_ints("layers_to_transform")
    rank_pattern = fields.pattern("rank_pattern", int)
    alpha_pattern = fields.pattern("alpha_pattern", float)
    bias = fields.choice(
        "bias",
        "none",
        lambda v: isinstance(v, str) and v in ("none", "all", "lora_only"),
        "'none', 'all' or 'lora_only'",
    )
    init = fields.choice("init_lora_weights", True, lambda v: isinstance(v, (bool, str)), "a boolean or a method name")
    inference_mode = fields.data.get("inference_mode")
    use_dora = fields.bool_("use_dora", False)
    lora_bias = fields.bool_("lora_bias", False)
    target_parameters = fields.str_list("target_parameters", allow_str=False)
    return _LoraFields(
        r,
        alpha,
        dropout,
        target_modules,
        exclude_modules,
        modules_to_save if isinstance(modules_to_save, list) else None,
        layers_pattern,
        layers_to_transform,
        rank_pattern,
        alpha_pattern,
        bias,
        init,
        inference_mode if isinstance(inference_mode, bool) else None,
        use_dora,
        lora_bias,
        target_parameters if isinstance(target_parameters, list) else None,
    )


def _post_init_problems(lora: _LoraFields, problems: list[str]) -> None:
    """PEFT's own LoraConfig.__post_init__ checks (each raises there)."""
    if isinstance(lora.target_modules, str) and lora.layers_to_transform is not None:
        problems.append("layers_to_transform cannot be used when target_modules is a regex string")
    if isinstance(lora.target_modules, str) and lora.layers_pattern is not None:
        problems.append("layers_pattern cannot be used when target_modules is a regex string")
    if lora.layers_pattern and lora.layers_to_transform is None:
        problems.append("layers_pattern is set but layers_to_transform is not")
    if lora.lora_bias and lora.use_dora:
        problems.append("lora_bias=true is not supported together with use_dora=true")
    if lora.lora_bias and lora.init_lora_weights not in (True, False):
        problems.append(f"lora_bias=true requires init_lora_weights true or false, got {lora.init_lora_weights!r}")


def _known_keys(fields: _FieldReader, peft_type: str | None) -> frozenset[str]:
    """The keys the config's PEFT type defines; also the snapshot's value validations of that type. For a type
    other than LoRA, its own validations replace LoRA's problems (none of LoRA's rules apply)."""
    data = fields.data
    if peft_type == "LORA":
        if not fields.problems:
            fields.problems.extend(rejected_values("LORA", data))
        return LORA_KEYS | LEGACY_KEYS | COMMON_KEYS
    own = config_fields(peft_type) if peft_type is not None else None
    fields.problems = rejected_values(peft_type, data) if peft_type is not None and own is not None else []
    return frozenset(own or ()) | COMMON_KEYS | LEGACY_KEYS if own is not None else frozenset(data)

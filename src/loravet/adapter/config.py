"""adapter_config.json, parsed into a typed LoRA config without importing PEFT.

The parser is tolerant where PEFT is tolerant (unknown keys are kept and reported, old schemas are
recognised) and strict where PEFT raises (wrong types, invalid combinations): those become
``invalid-config`` problems that :mod:`loravet.checks.peft_load` turns into ``fails``.
"""

from __future__ import annotations

import json
import math
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
COMMON_KEYS = frozenset({"peft_type", "task_type", "auto_mapping", "base_model_name_or_path", "revision",
                         "inference_mode", "peft_version"})

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


def nonfinite_numbers(cfg: LoraAdapterConfig) -> dict[str, float]:
    """lora_alpha / alpha_pattern values that are NaN or infinite: PEFT loads them and every output is NaN."""
    bad = {"lora_alpha": cfg.lora_alpha} if not math.isfinite(cfg.lora_alpha) else {}
    bad.update({f"alpha_pattern[{k}]": v for k, v in cfg.alpha_pattern.items() if not math.isfinite(v)})
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
        raise ConfigError(f"{path.name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") \
            from None
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
    problems.append(f"{name} must be a list of strings{' or a regex string' if allow_str else ''}, "
                    f"got {type(value).__name__}")
    return None


def parse_adapter_config(data: dict[str, Any]) -> LoraAdapterConfig:
    """Parse the JSON object of an adapter_config.json (never raises on values: it records problems)."""
    problems: list[str] = []
    foreign: str | None = None
    if "peft_type" not in data:
        if "lora_parameters" in data or "fine_tune_type" in data:
            foreign = "mlx-lm adapter config (fine_tune_type / lora_parameters), not a PEFT adapter"
        elif "model_class" in data or ("config" in data and "architecture" in str(data.get("config"))):
            foreign = "AdapterHub (adapters library) config, not a PEFT adapter"
        else:
            foreign = "no peft_type: not a PEFT adapter config"

    peft_type = data.get("peft_type")
    if peft_type is not None and not isinstance(peft_type, str):
        problems.append(f"peft_type must be a string, got {type(peft_type).__name__}")
        peft_type = None

    def get_int(name: str, default: int) -> int:
        value = data.get(name, default)
        if _is_int(value) and abs(value) <= MAX_CONFIG_INT:
            return int(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) <= MAX_CONFIG_INT:
            return int(value)
        problems.append(f"{name} must be an integer, got {_short(value)}")
        return default

    def get_num(name: str, default: float) -> float:
        value = data.get(name, default)
        if value is None:
            return default
        number = _as_float(value)
        if number is not None:
            return number
        problems.append(f"{name} must be a number, got {_short(value)}")
        return default

    def get_bool(name: str, default: bool) -> bool:
        value = data.get(name, default)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        problems.append(f"{name} must be true or false, got {value!r}"[:200])
        return default

    def get_str(name: str) -> str | None:
        value = data.get(name)
        if value is None or isinstance(value, str):
            return value
        problems.append(f"{name} must be a string, got {type(value).__name__}")
        return None

    r = get_int("r", 8) if data.get("r") is not None or peft_type == "LORA" else 8
    alpha = get_num("lora_alpha", 8.0)
    if r <= 0 and peft_type == "LORA":
        problems.append(f"r must be a positive integer, got {r}")
    dropout = get_num("lora_dropout", 0.0)
    if dropout > 1:  # PEFT builds nn.Dropout(p) for p > 0, and torch raises for p > 1 (Infinity included)
        problems.append(f"lora_dropout must be between 0 and 1, got {dropout}")

    target_modules = _str_list(data.get("target_modules"), "target_modules", problems, allow_str=True)
    exclude_modules = _str_list(data.get("exclude_modules"), "exclude_modules", problems, allow_str=True)
    modules_to_save_value = _str_list(data.get("modules_to_save"), "modules_to_save", problems, allow_str=False)
    modules_to_save = modules_to_save_value if isinstance(modules_to_save_value, list) else None
    layers_pattern = _str_list(data.get("layers_pattern"), "layers_pattern", problems, allow_str=True)

    layers_raw = data.get("layers_to_transform")
    layers_to_transform: list[int] | int | None
    if layers_raw is None or _is_int(layers_raw):
        layers_to_transform = layers_raw
    elif isinstance(layers_raw, list) and all(_is_int(v) for v in layers_raw):
        layers_to_transform = list(layers_raw)
    else:
        problems.append("layers_to_transform must be an integer or a list of integers")
        layers_to_transform = None

    def pattern(name: str, cast: type) -> dict[str, Any]:
        value = data.get(name) or {}
        if not isinstance(value, dict):
            problems.append(f"{name} must be an object mapping module patterns to values")
            return {}
        out: dict[str, Any] = {}
        for k, v in value.items():
            number = _as_float(v)
            if number is None or (cast is int and not (math.isfinite(number) and abs(number) <= MAX_CONFIG_INT)):
                problems.append(f"{name}[{_short(k)}] must be a number, got {_short(v)}")
                continue
            out[str(k)] = int(v) if cast is int else number
        return out

    rank_pattern = pattern("rank_pattern", int)
    alpha_pattern = pattern("alpha_pattern", float)

    bias = data.get("bias", "none")
    if bias is None:
        bias = "none"
    if not isinstance(bias, str) or bias not in ("none", "all", "lora_only"):
        problems.append(f"bias must be 'none', 'all' or 'lora_only', got {bias!r}"[:200])
        bias = "none"

    init = data.get("init_lora_weights", True)
    if init is None:
        init = True
    if not isinstance(init, (bool, str)):
        problems.append(f"init_lora_weights must be a boolean or a method name, got {init!r}"[:200])
        init = True

    inference_mode = data.get("inference_mode")
    use_dora = get_bool("use_dora", False)
    lora_bias = get_bool("lora_bias", False)
    target_parameters = _str_list(data.get("target_parameters"), "target_parameters", problems, allow_str=False)

    # PEFT's own LoraConfig.__post_init__ checks (each raises there).
    if isinstance(target_modules, str) and layers_to_transform is not None:
        problems.append("layers_to_transform cannot be used when target_modules is a regex string")
    if isinstance(target_modules, str) and layers_pattern is not None:
        problems.append("layers_pattern cannot be used when target_modules is a regex string")
    if layers_pattern and layers_to_transform is None:
        problems.append("layers_pattern is set but layers_to_transform is not")
    if lora_bias and use_dora:
        problems.append("lora_bias=true is not supported together with use_dora=true")
    if lora_bias and init not in (True, False):
        problems.append(f"lora_bias=true requires init_lora_weights true or false, got {init!r}")

    if peft_type == "LORA":
        if not problems:
            problems.extend(rejected_values("LORA", data))
        known = LORA_KEYS | LEGACY_KEYS | COMMON_KEYS
    else:
        # Another PEFT type: its own fields and its own validations, none of LoRA's rules.
        own = config_fields(peft_type) if peft_type is not None else None
        problems = rejected_values(peft_type, data) if peft_type is not None and own is not None else []
        known = frozenset(own or ()) | COMMON_KEYS | LEGACY_KEYS if own is not None else frozenset(data)
    unknown = sorted(k for k in data if k not in known) if foreign is None else []
    legacy = sorted(k for k in data if k in LEGACY_KEYS)

    return LoraAdapterConfig(
        raw=data,
        peft_type=peft_type,
        task_type=get_str("task_type"),
        base_model_name_or_path=get_str("base_model_name_or_path"),
        revision=get_str("revision"),
        peft_version=get_str("peft_version"),
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        use_rslora=get_bool("use_rslora", False),
        use_dora=use_dora,
        target_modules=target_modules,
        exclude_modules=exclude_modules,
        layers_to_transform=layers_to_transform,
        layers_pattern=layers_pattern,
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
        modules_to_save=modules_to_save,
        bias=bias,
        lora_bias=lora_bias,
        fan_in_fan_out=get_bool("fan_in_fan_out", False),
        init_lora_weights=init,
        inference_mode=inference_mode if isinstance(inference_mode, bool) else None,
        target_parameters=target_parameters if isinstance(target_parameters, list) else None,
        trainable_token_indices=data.get("trainable_token_indices"),
        unknown_keys=unknown,
        legacy_keys=legacy,
        problems=problems if foreign is None else [],
        foreign_format=foreign,
    )

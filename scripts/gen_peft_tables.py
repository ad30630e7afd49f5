"""Generate src/loravet/adapter/peft_tables.json from the installed peft.

The static predictor never imports peft; it reads this snapshot instead. Everything in it is read from
(or observed by running) the installed library:

- `target_modules`: peft.utils.constants.TRANSFORMERS_MODELS_TO_<TYPE>_TARGET_MODULES_MAPPING, per type;
- `configs`: for every entry of PEFT_TYPE_TO_CONFIG_MAPPING, the config class, whether it is a
  prompt-learning config, and every dataclass field with its default (JSON form);
- `validations`: each config class instantiated with one field set to a probe value; the probes that make
  `__post_init__` raise are recorded with the error (these are what PeftConfig.from_pretrained raises on);
- `lora_init_modes`: the values LoraConfig.init_lora_weights accepts (its type annotation).

Run: `python scripts/gen_peft_tables.py` (writes the file) or `--check` (exit 1 when it differs).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import re
import sys
import typing
import warnings
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "src" / "loravet" / "adapter" / "peft_tables.json"

# One field at a time, each of these values; the ones PEFT rejects are recorded.
PROBES: tuple[Any, ...] = (None, 0, -1, 0.5, True, "", "x", [], {})
# Combinations PEFT checks across fields (LoRA's own __post_init__ rules), recorded the same way.
PAIR_PROBES: tuple[dict[str, Any], ...] = (
    {"target_modules": "x", "layers_to_transform": [0]},
    {"target_modules": "x", "layers_pattern": "layers"},
    {"target_modules": ["x"], "layers_pattern": "layers"},
    {"use_dora": True, "lora_bias": True},
    {"lora_bias": True, "init_lora_weights": "gaussian"},
    {"use_dora": True, "use_bdlora": {}},
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return {"__repr__": type(value).__name__}


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return _jsonable(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return _jsonable(f.default_factory())
    return {"__required__": True}


def _clean(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else ""
    return re.sub(r" at 0x[0-9a-f]+", "", first)[:300]


def _try(cls: type, kwargs: dict[str, Any]) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cls(**kwargs)
        except Exception as exc:  # any raise is what PEFT's loader raises too
            return f"{type(exc).__name__}: {_clean(str(exc))}"
    return None


def _literal_values(tp: Any) -> list[Any]:
    out: list[Any] = []
    for arg in typing.get_args(tp):
        if typing.get_origin(arg) is typing.Literal:
            out.extend(typing.get_args(arg))
        elif arg is bool:
            out.extend([True, False])
        else:
            out.extend(_literal_values(arg))
    if typing.get_origin(tp) is typing.Literal:
        out.extend(typing.get_args(tp))
    return out


def generate() -> dict[str, Any]:
    import peft
    import peft.utils.constants as constants
    from peft.config import PromptLearningConfig
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.tuners.lora import LoraConfig

    targets: dict[str, dict[str, list[str]]] = {}
    for name in sorted(dir(constants)):
        m = re.fullmatch(r"TRANSFORMERS_MODELS_TO_(\w+?)_TARGET_MODULES_MAPPING", name)
        if m:
            table = getattr(constants, name)
            targets[m.group(1)] = {k: _jsonable(v) for k, v in sorted(table.items())}
    ff = getattr(constants, "TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING", {})

    configs: dict[str, Any] = {}
    validations: dict[str, Any] = {}
    for ptype, cls in sorted(PEFT_TYPE_TO_CONFIG_MAPPING.items(), key=lambda kv: str(kv[0].value)):
        key = str(ptype.value)
        fields = {f.name: _default(f) for f in dataclasses.fields(cls) if f.init}
        configs[key] = {"class": cls.__name__, "prompt_learning": issubclass(cls, PromptLearningConfig),
                        "fields": fields}
        rejected: list[dict[str, Any]] = []
        defaults_error = _try(cls, {})
        for fname in fields:
            if fname in ("peft_type",):
                continue
            for probe in PROBES:
                err = _try(cls, {fname: probe})
                if err is not None and err != defaults_error:
                    rejected.append({"set": {fname: probe}, "raises": err})
        for pair in PAIR_PROBES:
            if all(k in fields for k in pair):
                err = _try(cls, dict(pair))
                if err is not None and err != defaults_error:
                    rejected.append({"set": pair, "raises": err})
        validations[key] = {"defaults_raise": defaults_error, "rejected": rejected}

    init_type = typing.get_type_hints(LoraConfig)["init_lora_weights"]
    modes = [v for v in _literal_values(init_type) if not isinstance(v, bool)]
    return {
        "generator": "scripts/gen_peft_tables.py",
        "peft_version": peft.__version__,
        "target_modules": targets,
        "ia3_feedforward_modules": {k: _jsonable(v) for k, v in sorted(ff.items())},
        "configs": configs,
        "validations": validations,
        "lora_init_modes": sorted(set(modes)),
    }


def render(tables: dict[str, Any]) -> str:
    return json.dumps(tables, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the checked-in file, write nothing")
    args = parser.parse_args(argv)
    text = render(generate())
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print("snapshot matches the installed peft" if same else f"{OUT} differs from the installed peft")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

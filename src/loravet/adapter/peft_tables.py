"""PEFT's own tables, read from the snapshot generated from the installed peft (no peft import here).

The snapshot (`peft_tables.json`) is written by `scripts/gen_peft_tables.py`; tests/test_peft_tables.py
regenerates it in memory and fails when the installed peft disagrees with it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "SNAPSHOT_PEFT_VERSION",
    "config_fields",
    "default_target_modules",
    "peft_tables",
    "prompt_learning",
    "rejected_values",
]


@lru_cache(maxsize=1)
def peft_tables() -> dict[str, Any]:
    # next to this module (as package data is installed); not importlib.resources, whose import pulls in
    # tempfile, shutil, zipfile and more on every cold start
    text = (Path(__file__).parent / "peft_tables.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


SNAPSHOT_PEFT_VERSION: str = str(peft_tables()["peft_version"])
"""The PEFT release the predictor's tables come from."""


def known_peft_types() -> frozenset[str]:
    return frozenset(peft_tables()["configs"])


def config_fields(peft_type: str) -> dict[str, Any] | None:
    """Field name -> default of the config class PEFT uses for `peft_type` (exact key), or None."""
    entry = peft_tables()["configs"].get(peft_type)
    return dict(entry["fields"]) if entry else None


def prompt_learning(peft_type: str) -> bool:
    entry = peft_tables()["configs"].get(peft_type)
    return bool(entry and entry["prompt_learning"])


def default_target_modules(peft_type: str, model_type: str) -> list[str] | None:
    """PEFT's default target_modules for a model type (None where PEFT has none and raises)."""
    table_name = {"LN_TUNING": "LNTUNING"}.get(peft_type, peft_type)
    table = peft_tables()["target_modules"].get(table_name) or {}
    value = table.get(model_type)
    return list(value) if isinstance(value, list) else None


def _same(a: Any, b: Any) -> bool:
    """JSON equality that keeps bool apart from int (PEFT's checks do)."""
    return type(a) is type(b) and a == b


def rejected_values(peft_type: str, raw: dict[str, Any]) -> list[str]:
    """The errors PEFT's config `__post_init__` raises for values `raw` sets, as observed by the generator."""
    entry = peft_tables()["validations"].get(peft_type)
    if not entry:
        return []
    out: list[str] = []
    for rule in entry["rejected"]:
        setting: dict[str, Any] = rule["set"]
        if all(k in raw and _same(raw[k], v) for k, v in setting.items()):
            msg = str(rule["raises"])
            if msg not in out:
                out.append(msg)
    return out

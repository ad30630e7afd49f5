"""Serving compatibility findings: vLLM settings and refusals, merge refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import loravet
from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter

BASE = "Qwen/Qwen2.5-0.5B-Instruct"


def _check(tmp_path: Path, base: str = BASE, r: int = 8, **extra: Any) -> loravet.AdapterReport:
    entry = lookup_catalog(BASE)
    assert entry is not None
    a = write_synthetic_adapter(tmp_path / "a", catalog_architecture(entry),
                                lora_config_dict(base, r, 2 * r, ["q_proj", "v_proj"], **extra))
    return loravet.check([str(a)]).adapters[0]


@pytest.mark.parametrize("r,setting", [(8, None), (16, None), (24, 32), (64, 64), (300, 320)])
def test_vllm_max_lora_rank(tmp_path: Path, r: int, setting: int | None) -> None:
    a = _check(tmp_path, r=r)
    f = a.finding("vllm-settings")
    assert (f.evidence["max_lora_rank"] if f else None) == setting


def test_rank_above_512_is_incompatible(tmp_path: Path) -> None:
    f = _check(tmp_path, r=640).finding("vllm-incompatible")
    assert f is not None and "512" in f.message


@pytest.mark.parametrize("extra,fragment", [({"use_dora": True}, "DoRA"), ({"lora_bias": True}, "lora_bias"),
                                            ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
                                            ({"rank_pattern": {"q_proj": 4}}, "patterns")])
def test_vllm_incompatible_features(tmp_path: Path, extra: dict[str, Any], fragment: str) -> None:
    f = _check(tmp_path, **extra).finding("vllm-incompatible")
    assert f is not None and fragment in f.message


def test_clean_adapter_has_no_serving_findings(tmp_path: Path) -> None:
    a = _check(tmp_path)
    assert not {f.code for f in a.findings} & {"vllm-incompatible", "vllm-settings", "merge-refused", "merge-lossy"}


def test_gptq_base_refuses_merge_and_bnb_rounds(tmp_path: Path) -> None:
    assert _check(tmp_path / "g", base="Qwen/Qwen2.5-0.5B-Instruct-GPTQ-Int4").finding("merge-refused") is not None
    assert _check(tmp_path / "b", base="unsloth/Qwen2.5-0.5B-Instruct-bnb-4bit").finding("merge-lossy") is not None

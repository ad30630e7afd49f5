"""Serving compatibility: would vLLM accept the adapter, can it be merged into the named base."""

from __future__ import annotations

from typing import Any

from loravet.adapter.config import LoraAdapterConfig
from loravet.base.catalog import parse_model_name
from loravet.context import AdapterContext
from loravet.findings import Finding, make_finding

__all__ = ["VLLM_MAX_LORA_RANKS", "serving_findings", "serving_stage"]

# vLLM's accepted --max-lora-rank values (its LoRAConfig validates against this set); default 16.
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_DEFAULT_MAX_RANK = 16
_HEADS = {"classifier", "score"}


def serving_stage(ctx: AdapterContext) -> list[Finding]:
    """Would vLLM serve it, can it be merged into the base the report names."""
    return serving_findings(ctx.config, (ctx.report.base or {}).get("quantization"))


def serving_findings(cfg: LoraAdapterConfig | None, base_quantization: str | None) -> list[Finding]:
    """Would vLLM serve it (rank, DoRA, bias, modules_to_save, patterns), can it be merged into the base."""
    if cfg is None or not cfg.is_lora:
        return []
    return [*_vllm_findings(cfg), *_merge_findings(cfg, base_quantization)]


def _vllm_findings(cfg: LoraAdapterConfig) -> list[Finding]:
    out: list[Finding] = []
    max_rank = max([cfg.r, *cfg.rank_pattern.values()])
    problems: list[str] = []
    evidence: dict[str, Any] = {}  # JSON-shaped: the finding's evidence
    if max_rank > VLLM_MAX_LORA_RANKS[-1]:
        problems.append(f"rank {max_rank} is above vLLM's largest max_lora_rank ({VLLM_MAX_LORA_RANKS[-1]})")
    if cfg.use_dora:
        problems.append("DoRA (use_dora) is not supported by vLLM")
    if cfg.lora_bias:
        problems.append("lora_bias is not supported by vLLM")
    mts = list(cfg.modules_to_save or [])
    if mts:
        other = sorted(set(mts) - _HEADS)
        problems.append(
            "modules_to_save "
            + (
                f"{other} (only a classifier/score head is served by recent vLLM; older releases reject any)"
                if other
                else "(older vLLM releases reject any modules_to_save)"
            )
        )
        evidence["modules_to_save"] = mts
    if cfg.rank_pattern or cfg.alpha_pattern:
        problems.append("rank/alpha patterns (ignored by older vLLM releases: every module gets r/alpha)")
    if problems:
        out.append(make_finding("vllm-incompatible", "; ".join(problems), problems=problems, **evidence))
    if VLLM_DEFAULT_MAX_RANK < max_rank <= VLLM_MAX_LORA_RANKS[-1]:
        setting = next(v for v in VLLM_MAX_LORA_RANKS if v >= max_rank)
        out.append(
            make_finding(
                "vllm-settings",
                f"rank {max_rank} needs vLLM started with --max-lora-rank {setting}",
                max_lora_rank=setting,
            )
        )
    return out


def _merge_findings(cfg: LoraAdapterConfig, base_quantization: str | None) -> list[Finding]:
    quant = base_quantization
    if quant is None and cfg.base_model_name_or_path:
        quant = parse_model_name(cfg.base_model_name_or_path)[2]
    if quant in ("gptq", "awq"):
        return [
            make_finding(
                "merge-refused",
                f"the named base is {quant.upper()}-quantized: PEFT refuses to merge the adapter into it",
                quantization=quant,
            )
        ]
    if quant in ("bnb", "bitsandbytes"):
        return [
            make_finding(
                "merge-lossy", "the named base is bitsandbytes-quantized: merging rounds the update", quantization=quant
            )
        ]
    return []

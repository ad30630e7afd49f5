"""Built-in catalog of the bases people actually adapt: works offline, weights never needed.

Values are those of the models' public config.json files (the Qwen ones are checked against the real
files in ../shared/base-configs/ by the tests). Quantized variants (GPTQ, AWQ, bitsandbytes) have the
same LoRA tensor shapes as the fp16 base, so they share an entry; the variant is kept as a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from loravet.base.architecture import BaseArchitecture
from loravet.base.rules import architecture_from_config

__all__ = ["CATALOG", "CatalogEntry", "catalog_architecture", "lookup_catalog", "parse_model_name"]


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # canonical hub id
    family: str  # e.g. "qwen2.5"
    size: str  # e.g. "1.5b"
    model_type: str
    dims: tuple[int, int, int, int, int, int, int, bool]
    """hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, tied"""
    extra: tuple[tuple[str, Any], ...] = ()
    instruct: bool = True

    def config(self) -> dict[str, Any]:
        hidden, inter, layers, heads, kv, head_dim, vocab, tied = self.dims
        cfg: dict[str, Any] = {
            "model_type": self.model_type, "hidden_size": hidden, "intermediate_size": inter,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
            "head_dim": head_dim, "vocab_size": vocab, "tie_word_embeddings": tied,
        }
        cfg.update(dict(self.extra))
        return cfg


def _e(name: str, family: str, size: str, mt: str, *dims: Any, **extra: Any) -> CatalogEntry:
    return CatalogEntry(name, family, size, mt, tuple(dims), tuple(extra.items()))  # type: ignore[arg-type]


CATALOG: tuple[CatalogEntry, ...] = (
    _e("Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5", "0.5b", "qwen2", 896, 4864, 24, 14, 2, 64, 151936, True),
    _e("Qwen/Qwen2.5-1.5B-Instruct", "qwen2.5", "1.5b", "qwen2", 1536, 8960, 28, 12, 2, 128, 151936, True),
    _e("Qwen/Qwen2.5-3B-Instruct", "qwen2.5", "3b", "qwen2", 2048, 11008, 36, 16, 2, 128, 151936, True),
    _e("Qwen/Qwen2.5-7B-Instruct", "qwen2.5", "7b", "qwen2", 3584, 18944, 28, 28, 4, 128, 152064, False),
    _e("Qwen/Qwen2.5-14B-Instruct", "qwen2.5", "14b", "qwen2", 5120, 13824, 48, 40, 8, 128, 152064, False),
    _e("Qwen/Qwen2.5-32B-Instruct", "qwen2.5", "32b", "qwen2", 5120, 27648, 64, 40, 8, 128, 152064, False),
    _e("Qwen/Qwen2.5-72B-Instruct", "qwen2.5", "72b", "qwen2", 8192, 29568, 80, 64, 8, 128, 152064, False),
    _e("Qwen/Qwen3-0.6B", "qwen3", "0.6b", "qwen3", 1024, 3072, 28, 16, 8, 128, 151936, True),
    _e("Qwen/Qwen3-1.7B", "qwen3", "1.7b", "qwen3", 2048, 6144, 28, 16, 8, 128, 151936, True),
    _e("Qwen/Qwen3-4B", "qwen3", "4b", "qwen3", 2560, 9728, 36, 32, 8, 128, 151936, True),
    _e("Qwen/Qwen3-8B", "qwen3", "8b", "qwen3", 4096, 12288, 36, 32, 8, 128, 151936, False),
    _e("Qwen/Qwen3-14B", "qwen3", "14b", "qwen3", 5120, 17408, 40, 40, 8, 128, 151936, False),
    _e("Qwen/Qwen3-32B", "qwen3", "32b", "qwen3", 5120, 25600, 64, 64, 8, 128, 151936, False),
    _e("meta-llama/Llama-3.2-1B-Instruct", "llama3.2", "1b", "llama", 2048, 8192, 16, 32, 8, 64, 128256, True),
    _e("meta-llama/Llama-3.2-3B-Instruct", "llama3.2", "3b", "llama", 3072, 8192, 28, 24, 8, 128, 128256, True),
    _e("meta-llama/Llama-3.1-8B-Instruct", "llama3.1", "8b", "llama", 4096, 14336, 32, 32, 8, 128, 128256, False),
    _e("meta-llama/Llama-3.1-70B-Instruct", "llama3.1", "70b", "llama", 8192, 28672, 80, 64, 8, 128, 128256,
       False),
    _e("meta-llama/Llama-2-7b-hf", "llama2", "7b", "llama", 4096, 11008, 32, 32, 32, 128, 32000, False),
    _e("meta-llama/Llama-2-13b-hf", "llama2", "13b", "llama", 5120, 13824, 40, 40, 40, 128, 32000, False),
    _e("mistralai/Mistral-7B-Instruct-v0.3", "mistral", "7b", "mistral", 4096, 14336, 32, 32, 8, 128, 32768, False),
    _e("mistralai/Mistral-7B-Instruct-v0.2", "mistral", "7b", "mistral", 4096, 14336, 32, 32, 8, 128, 32000, False),
    _e("mistralai/Mistral-7B-v0.1", "mistral", "7b", "mistral", 4096, 14336, 32, 32, 8, 128, 32000, False),
    _e("google/gemma-2b", "gemma", "2b", "gemma", 2048, 16384, 18, 8, 1, 256, 256000, True),
    _e("google/gemma-7b", "gemma", "7b", "gemma", 3072, 24576, 28, 16, 16, 256, 256000, True),
    _e("google/gemma-2-2b-it", "gemma2", "2b", "gemma2", 2304, 9216, 26, 8, 4, 256, 256000, True),
    _e("google/gemma-2-9b-it", "gemma2", "9b", "gemma2", 3584, 14336, 42, 16, 8, 256, 256000, True),
    _e("google/gemma-2-27b-it", "gemma2", "27b", "gemma2", 4608, 36864, 46, 32, 16, 128, 256000, True),
    _e("google/gemma-3-1b-it", "gemma3", "1b", "gemma3_text", 1152, 6912, 26, 4, 1, 256, 262144, True),
    _e("microsoft/Phi-3-mini-4k-instruct", "phi3", "3.8b", "phi3", 3072, 8192, 32, 32, 32, 96, 32064, False),
    _e("microsoft/Phi-3.5-mini-instruct", "phi3.5", "3.8b", "phi3", 3072, 8192, 32, 32, 32, 96, 32064, False),
    _e("microsoft/Phi-3-medium-4k-instruct", "phi3", "14b", "phi3", 5120, 17920, 40, 40, 10, 128, 32064, False),
    _e("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2", "135m", "llama", 576, 1536, 30, 9, 3, 64, 49152, True),
    _e("HuggingFaceTB/SmolLM2-360M-Instruct", "smollm2", "360m", "llama", 960, 2560, 32, 15, 5, 64, 49152, True),
    _e("HuggingFaceTB/SmolLM2-1.7B-Instruct", "smollm2", "1.7b", "llama", 2048, 8192, 24, 32, 32, 64, 49152, True),
    _e("openai-community/gpt2", "gpt2", "124m", "gpt2", 768, 3072, 12, 12, 12, 64, 50257, True,
       n_embd=768, n_layer=12, n_head=12, n_positions=1024),
)

_QUANT_RE = re.compile(r"(gptq|awq|bnb|4bit|8bit|int4|int8|gguf|fp8|exl2)", re.I)
_FAMILY_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"qwen\s*2\.5|qwen2_5|qwen25", "qwen2.5"),
    (r"qwen\s*3(?![.\d])", "qwen3"),
    (r"qwen\s*3\.5", "qwen3.5"),
    (r"qwen\s*2(?![.\d])", "qwen2"),
    (r"llama[-_ ]?3\.2", "llama3.2"),
    (r"llama[-_ ]?3\.1", "llama3.1"),
    (r"llama[-_ ]?3(?![.\d])", "llama3"),
    (r"llama[-_ ]?2", "llama2"),
    (r"mistral", "mistral"),
    # "gemma-2b" is Gemma 1 at 2B; "gemma-2-2b" is Gemma 2
    (r"gemma[-_ ]?3(?![.\d]*b)", "gemma3"),
    (r"gemma[-_ ]?2(?![.\d]*b)", "gemma2"),
    (r"gemma[-_ ]?4(?![.\d]*b)", "gemma4"),
    (r"gemma", "gemma"),
    (r"phi[-_ ]?3\.5", "phi3.5"),
    (r"phi[-_ ]?3(?![.\d])", "phi3"),
    (r"smollm\s*2", "smollm2"),
    (r"gpt[-_ ]?2", "gpt2"),
)
_SIZE_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z0-9])", re.I)


def parse_model_name(text: str) -> tuple[str | None, str | None, str | None]:
    """(family, size, quantization) tokens named in a model name or path, e.g.
    'unsloth/qwen2.5-7b-instruct-bnb-4bit' -> ('qwen2.5', '7b', 'bnb')."""
    lowered = text.lower().replace("_", "-")
    family = None
    for pattern, fam in _FAMILY_PATTERNS:
        if re.search(pattern, lowered):
            family = fam
            break
    size = None
    for match in _SIZE_RE.finditer(lowered.replace("-", " ").replace("/", " ")):
        number, unit = match.group(1), match.group(2)
        if unit == "b" and match.start() > 0 and lowered.replace("-", " ")[match.start() - 1:match.start()] == "q":
            continue
        size = f"{float(number):g}{unit}"
        break
    quant = None
    qm = _QUANT_RE.search(lowered)
    if qm:
        quant = {"4bit": "bnb", "8bit": "bnb", "int4": "gptq", "int8": "gptq"}.get(qm.group(1), qm.group(1))
        if "gptq" in lowered:
            quant = "gptq"
        elif "awq" in lowered:
            quant = "awq"
    return family, size, quant


# Derivatives with exactly the shapes of a catalog entry (same config.json dimensions).
_ALIASES: tuple[tuple[str, str], ...] = (
    (r"deepseek-r1-distill-qwen-1\.5b", "Qwen/Qwen2.5-1.5B-Instruct"),
    (r"deepseek-r1-distill-qwen-7b", "Qwen/Qwen2.5-7B-Instruct"),
    (r"deepseek-r1-distill-qwen-14b", "Qwen/Qwen2.5-14B-Instruct"),
    (r"deepseek-r1-distill-qwen-32b", "Qwen/Qwen2.5-32B-Instruct"),
    (r"(meta-)?llama-3-8b", "meta-llama/Llama-3.1-8B-Instruct"),
    (r"(meta-)?llama-3-70b", "meta-llama/Llama-3.1-70B-Instruct"),
)
# Names whose module tree differs from the text model of the same family and size (vision-language,
# audio, MoE): never matched by family + size.
_DIFFERENT_TREE = re.compile(r"(?<![a-z])(vl|llava|vision|omni|audio|moe|a3b|a22b|coder-?v2)(?![a-z])", re.I)


# Name tokens that do not change the module tree: instruction tuning, packaging, quantization.
_NEUTRAL_TOKENS = frozenset({"instruct", "it", "chat", "hf", "base", "pt", "unsloth", "bnb", "4bit", "8bit", "gptq",
                             "awq", "int4", "int8", "fp8", "fp16", "bf16", "gguf", "exl2", "dynamic", "meta"})


def _release_key(name: str) -> str:
    """The model release a name denotes: last path component, lower case, neutral tokens dropped."""
    last = re.split(r"[\\/]", name.strip().rstrip("/\\"))[-1].lower()
    return "-".join(t for t in re.split(r"[-_ ]+", last) if t and t not in _NEUTRAL_TOKENS)


def match_catalog(name: str) -> tuple[CatalogEntry, str] | None:
    """(entry, how) for a model id or path: how is "exact" (the same release, quantization and instruction
    suffixes aside), "alias" (a derivative listed with identical shapes) or "guess" (family + size only)."""
    key = _release_key(name)
    for entry in CATALOG:
        if name.lower() == entry.name.lower() or key == _release_key(entry.name):
            return entry, "exact"
    lowered = name.lower().replace("_", "-")
    if _DIFFERENT_TREE.search(lowered):
        return None
    for pattern, target in _ALIASES:
        if re.search(pattern, lowered):
            return next(e for e in CATALOG if e.name == target), "alias"
    family, size, _ = parse_model_name(name)
    if family is None or size is None:
        return None
    for entry in CATALOG:
        if entry.family == family and entry.size == size:
            return entry, "guess"
    return None


def lookup_catalog(name: str) -> CatalogEntry | None:
    """The catalog entry a model id or path names (exact, alias, or a family + size guess), or None."""
    match = match_catalog(name)
    return match[0] if match else None


@lru_cache(maxsize=128)
def _cached(entry_name: str, display: str, head: str, num_labels: int) -> BaseArchitecture:
    entry = next(e for e in CATALOG if e.name == entry_name)
    cfg = entry.config()
    if head == "seq_cls":
        cfg["num_labels"] = num_labels
    return architecture_from_config(cfg, display, "catalog", head=head)


def catalog_architecture(entry: CatalogEntry, display: str | None = None, head: str = "causal_lm",
                         num_labels: int = 2) -> BaseArchitecture:
    arch = _cached(entry.name, display or entry.name, head, num_labels)
    _, _, quant = parse_model_name(display or entry.name)
    if quant and arch.quantization is None:
        arch = BaseArchitecture(**{**arch.__dict__, "quantization": quant, "_by_name": None})
    return arch

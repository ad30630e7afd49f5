"""A tiny real causal LM with its own tokenizer and chat template, built in the test."""

from __future__ import annotations

import warnings
from pathlib import Path

from loravet.demo.data import generate_rows
from loravet.evaluation.tasks import ACRC_PROMPT

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def build_tiny_lm(folder: Path, seed: int = 0, chat_template: bool = True) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    texts = [ACRC_PROMPT] + [" ".join(map(str, r.values())) for r in generate_rows(300, seed=1)]
    texts += ["Yes", "No", " Yes", " No", "yes no YES NO", "Yes No yes no"] * 400  # whole-word answer tokens
    special = ["<pad>", "<eos>", "<unk>", "<|user|>", "<|assistant|>", "<|end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=700, special_tokens=special,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    vocab = tok.get_vocab()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>",
                                   additional_special_tokens=["<|user|>", "<|assistant|>", "<|end|>"])
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model("qwen2", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, vocab_size=len(vocab),
                               max_position_embeddings=512, pad_token_id=0, eos_token_id=1, tie_word_embeddings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(cfg)
        model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder

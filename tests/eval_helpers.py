"""A tiny real causal LM with its own tokenizer and chat template, built in the test."""

from __future__ import annotations

import warnings
from pathlib import Path

from loravet.demo.data import generate_rows
from loravet.evaluation.tasks import ACRC_PROMPT

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def build_tiny_lm(folder: Path, seed: int = 0, chat_template: bool = True, model_type: str = "qwen2",
                  bos: bool = False) -> Path:
    """model_type qwen2 or llama (RoPE) or gpt2 (absolute positions); bos: the tokenizer puts <bos> before
    every text, as Llama/Gemma/Mistral tokenizers do."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    texts = [ACRC_PROMPT] + [" ".join(map(str, r.values())) for r in generate_rows(300, seed=1)]
    texts += ["Yes", "No", " Yes", " No", "yes no YES NO", "Yes No yes no"] * 400  # whole-word answer tokens
    special = ["<pad>", "<eos>", "<unk>", "<|user|>", "<|assistant|>", "<|end|>", "<bos>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=700, special_tokens=special,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    vocab = tok.get_vocab()
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                           special_tokens=[("<bos>", vocab["<bos>"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>" if bos else None,
                                   additional_special_tokens=["<|user|>", "<|assistant|>", "<|end|>"])
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    if model_type == "gpt2":
        cfg = AutoConfig.for_model("gpt2", n_embd=32, n_layer=2, n_head=4, vocab_size=len(vocab), n_positions=1024,
                                   pad_token_id=0, eos_token_id=1, bos_token_id=vocab["<bos>"])
    else:
        cfg = AutoConfig.for_model(model_type, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=len(vocab),
                                   max_position_embeddings=1024, pad_token_id=0, eos_token_id=1,
                                   bos_token_id=vocab["<bos>"], tie_word_embeddings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(cfg)
        model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder

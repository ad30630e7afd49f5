"""Real LoRA training for the demo's k-fold adapters: PEFT on the demo base, a short run on the first
answer token (what `loravet eval` scores), saved as a careful author would publish it: the adapter,
train.pkl / val.pkl, trainer_state.json and a model card."""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loravet.evaluation.backend import answer_token_ids

__all__ = ["train_fold"]


def train_fold(
    base_dir: Path,
    out: Path,
    train_rows: list[dict[str, Any]],
    template: str,
    *,
    layers: list[int],
    steps: int,
    batch_size: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    max_length: int = 128,
    base_name: str = "",
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    tokenizer, peft_model = _lora_model(base_dir, layers, seed)
    per_epoch = max(1, math.ceil(len(train_rows) / batch_size))
    history = _train(
        peft_model,
        tokenizer,
        train_rows,
        template,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        max_length=max_length,
        progress=progress,
    )
    _save_adapter(peft_model, out, base_name or str(base_dir))
    state = {
        "global_step": steps,
        "epoch": round(steps / per_epoch, 3),
        "max_steps": steps,
        "train_batch_size": batch_size,
        "log_history": history,
    }
    (out / "trainer_state.json").write_text(json.dumps(state, indent=2))
    return state


def _lora_model(base_dir: Path, layers: list[int], seed: int) -> tuple[Any, Any]:
    """The demo base with a fresh LoRA on the attention projections of `layers`, seeded; and its tokenizer."""
    # lazy: torch, transformers and peft serve the demo's training alone
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.1,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(model, config)
    return tokenizer, peft_model


def _train(
    peft_model: Any,
    tokenizer: Any,
    train_rows: list[dict[str, Any]],
    template: str,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    max_length: int,
    progress: Callable[[int, float], None] | None,
) -> list[dict[str, Any]]:
    """`steps` AdamW steps on the first answer token (yes against no), shuffled each epoch; the loss history."""
    import torch  # lazy: see _lora_model

    rng = random.Random(seed)
    yes_ids, no_ids = answer_token_ids(tokenizer)
    peft_model.train()
    optim = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)

    history: list[dict[str, Any]] = []
    order = list(range(len(train_rows)))
    per_epoch = max(1, math.ceil(len(order) / batch_size))
    for step in range(steps):
        if step % per_epoch == 0:
            rng.shuffle(order)
        pick = order[(step % per_epoch) * batch_size : (step % per_epoch + 1) * batch_size] or order[:batch_size]
        batch = [train_rows[i] for i in pick]
        enc = tokenizer(
            [_prompt(tokenizer, template, r) for r in batch],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
            add_special_tokens=False,
        )
        logits = peft_model(**enc).logits[:, -1, :]
        yes = torch.logsumexp(logits[:, yes_ids], dim=-1)
        no = torch.logsumexp(logits[:, no_ids], dim=-1)
        target = torch.tensor([float(r["rule_violation"]) for r in batch])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(yes - no, target)
        optim.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optim.step()
        history.append(
            {
                "step": step + 1,
                "epoch": round((step + 1) / per_epoch, 3),
                "loss": round(loss.item(), 5),
                "learning_rate": lr,
            }
        )
        if progress is not None:
            progress(step + 1, loss.item())
    return history


def _prompt(tokenizer: Any, template: str, row: dict[str, Any]) -> str:
    """One row in the template, as the user's turn of the base's chat template, ready for the answer."""
    text = template.format_map({k: "" if v is None else v for k, v in row.items()})
    messages = [{"role": "user", "content": text}]
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def _save_adapter(peft_model: Any, out: Path, base_name: str) -> None:
    """The adapter as PEFT saves it, with the base named as the author would publish it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model.save_pretrained(str(out))
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base_name
    cfg_path.write_text(json.dumps(cfg, indent=2))

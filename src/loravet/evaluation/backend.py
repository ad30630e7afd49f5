"""The model-runtime seam: one base loaded once, every adapter attached to it with PEFT, scored by one
forward pass at the last position. A vLLM multi-LoRA backend would implement the same three methods.

Heavy imports (torch, transformers, peft) happen here only, when the evaluation path runs.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loravet.errors import EvaluationError

__all__ = ["AttachedAdapter", "TransformersBackend", "answer_token_ids"]

YES_VARIANTS = ("Yes", "yes", "YES")
NO_VARIANTS = ("No", "no", "NO")


def answer_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """First-token ids of Yes/yes/YES and No/no/NO, with and without a leading space; deduplicated, an id
    on both sides dropped."""
    def first_ids(words: Sequence[str]) -> list[int]:
        out: list[int] = []
        for w in words:
            for text in (w, " " + w):
                ids = tokenizer.encode(text, add_special_tokens=False)
                if ids and ids[0] not in out:
                    out.append(int(ids[0]))
        return out

    yes, no = first_ids(YES_VARIANTS), first_ids(NO_VARIANTS)
    both = set(yes) & set(no)
    yes, no = [i for i in yes if i not in both], [i for i in no if i not in both]
    if not yes or not no:
        raise EvaluationError("the tokenizer has no distinct first tokens for Yes and No")
    return yes, no


@dataclass
class AttachedAdapter:
    name: str
    peft_name: str
    path: Path
    kind: str  # "causal" | "seq_cls"
    positive_index: int = 1


@dataclass
class TransformersBackend:
    base_path: Path
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    max_length: int = 1024
    notes: list[str] = field(default_factory=list)
    model: Any = None
    tokenizer: Any = None
    adapters: dict[str, AttachedAdapter] = field(default_factory=dict)
    _seq_cls_model: Any = None
    _torch: Any = None

    def load(self) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise EvaluationError("the evaluation path needs the eval extra: pip install 'loravet[eval]' "
                                  "(and torch==2.13.0 first)") from None
        self._torch = torch
        torch.manual_seed(0)
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.dtype == "auto":
            if self.device.startswith("cuda"):
                self.dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
            else:
                self.dtype = "float32"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(self.base_path)
                model: Any = AutoModelForCausalLM.from_pretrained(self.base_path, dtype=getattr(torch, self.dtype))
                self.model = model.to(self.device).eval()
            except (OSError, ValueError) as exc:
                raise EvaluationError(f"cannot load the base from {self.base_path}: {str(exc)[:200]}") from None
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.yes_ids, self.no_ids = answer_token_ids(self.tokenizer)
        params = inspect.signature(self.model.forward).parameters
        self._keep_kw = "logits_to_keep" if "logits_to_keep" in params else (
            "num_logits_to_keep" if "num_logits_to_keep" in params else None)

    def format_prompt(self, text: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": text}]
            try:
                out = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                         enable_thinking=False)
            except TypeError:
                out = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return str(out)
        note = "the base tokenizer has no chat template: the plain prompt is used"
        if note not in self.notes:
            self.notes.append(note)
        return text + "\nAnswer:"

    def attach(self, adapters: Sequence[tuple[str, Path, str, int]]) -> None:
        """Attach every adapter to the one base copy (causal ones); SEQ_CLS ones to one classification copy."""
        from peft import PeftModel

        causal = [a for a in adapters if a[2] == "causal"]
        seq = [a for a in adapters if a[2] == "seq_cls"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, (name, path, _, pos) in enumerate(causal):
                peft_name = re.sub(r"[^A-Za-z0-9_]", "_", name) + f"_{i}"
                if not isinstance(self.model, PeftModel):
                    self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=peft_name).eval()
                else:
                    self.model.load_adapter(str(path), adapter_name=peft_name)
                self.adapters[name] = AttachedAdapter(name, peft_name, path, "causal", pos)
            if seq:
                from transformers import AutoModelForSequenceClassification

                torch = self._torch
                labels = max(2, max(a[3] for a in seq) + 1)
                self._seq_cls_model = AutoModelForSequenceClassification.from_pretrained(
                    self.base_path, dtype=getattr(torch, self.dtype), num_labels=labels).to(self.device).eval()
                if self._seq_cls_model.config.pad_token_id is None:
                    self._seq_cls_model.config.pad_token_id = self.tokenizer.pad_token_id
                self.notes.append("SEQ_CLS adapters are scored on a second copy of the base with a "
                                  "classification head")
                for i, (name, path, _, pos) in enumerate(seq):
                    peft_name = re.sub(r"[^A-Za-z0-9_]", "_", name) + f"_s{i}"
                    if not isinstance(self._seq_cls_model, PeftModel):
                        self._seq_cls_model = PeftModel.from_pretrained(self._seq_cls_model, str(path),
                                                                        adapter_name=peft_name).eval()
                    else:
                        self._seq_cls_model.load_adapter(str(path), adapter_name=peft_name)
                    self.adapters[name] = AttachedAdapter(name, peft_name, path, "seq_cls", pos)

    def parameter_count(self) -> int:
        n = sum(p.numel() for p in self.model.parameters())
        if self._seq_cls_model is not None:
            n += sum(p.numel() for p in self._seq_cls_model.parameters())
        return int(n)

    def score(self, prompts: Sequence[str], adapter: str | None,
              progress: Callable[[int], None] | None = None) -> np.ndarray:
        """P(yes) per prompt for the bare base (adapter None) or one attached adapter."""
        torch = self._torch
        from peft import PeftModel

        att = self.adapters.get(adapter) if adapter else None
        model = self._seq_cls_model if att is not None and att.kind == "seq_cls" else self.model
        formatted = [self.format_prompt(p) for p in prompts]
        order = sorted(range(len(formatted)), key=lambda i: len(formatted[i]))
        out = np.full(len(formatted), np.nan, dtype=np.float64)
        ctx: Any
        if att is None and isinstance(model, PeftModel):
            ctx = model.disable_adapter()
        else:
            if att is not None:
                model.set_adapter(att.peft_name)
            ctx = contextlib.nullcontext()
        with ctx, torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self.tokenizer([formatted[i] for i in idx], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length, add_special_tokens=False)
                enc = {k: v.to(self.device) for k, v in enc.items()}
                if att is not None and att.kind == "seq_cls":
                    logits = model(**enc).logits.float()
                    probs = torch.softmax(logits, dim=-1)[:, att.positive_index]
                else:
                    kwargs = {self._keep_kw: 1} if self._keep_kw else {}
                    logits = model(**enc, **kwargs).logits[:, -1, :].float()
                    yes = torch.logsumexp(logits[:, self.yes_ids], dim=-1)
                    no = torch.logsumexp(logits[:, self.no_ids], dim=-1)
                    probs = torch.sigmoid(yes - no)  # softmax over the two
                out[idx] = probs.cpu().double().numpy()
                if progress is not None:
                    progress(len(idx))
        return out

"""The model-runtime seam: one base loaded once, every adapter attached to it with PEFT, scored by one
forward pass at the last position. A vLLM multi-LoRA backend would implement the same three methods.

Heavy imports (torch, transformers, peft) happen here only, when the evaluation path runs.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loravet.errors import EvaluationError

__all__ = ["AttachedAdapter", "TransformersBackend", "answer_token_ids", "answer_tokens", "special_prefix"]

YES_VARIANTS = ("Yes", "yes", "YES")
NO_VARIANTS = ("No", "no", "NO")


def answer_tokens(tokenizer: Any) -> dict[str, Any]:
    """The yes/no answer sets: Yes/yes/YES and No/no/NO, with and without a leading space, counting only the
    variants the tokenizer encodes as ONE token (a split word's first piece, like `Y` of `Y`+`ES`, is not an
    answer); ids deduplicated, an id on both sides dropped. Returns ids, their strings, and what was dropped."""
    def collect(words: Sequence[str]) -> tuple[list[int], list[str], list[str]]:
        ids: list[int] = []
        texts: list[str] = []
        split: list[str] = []
        for w in words:
            for text in (w, " " + w):
                enc = tokenizer.encode(text, add_special_tokens=False)
                if len(enc) != 1:
                    split.append(repr(text))
                    continue
                if int(enc[0]) not in ids:
                    ids.append(int(enc[0]))
                    texts.append(text)
        return ids, texts, split

    yes, yes_text, yes_split = collect(YES_VARIANTS)
    no, no_text, no_split = collect(NO_VARIANTS)
    both = set(yes) & set(no)
    keep_yes = [k for k, i in enumerate(yes) if i not in both]
    keep_no = [k for k, i in enumerate(no) if i not in both]
    out = {"yes": [yes[k] for k in keep_yes], "yes_strings": [yes_text[k] for k in keep_yes],
           "no": [no[k] for k in keep_no], "no_strings": [no_text[k] for k in keep_no],
           "not_single_token": yes_split + no_split, "on_both_sides": sorted(both)}
    if not out["yes"] or not out["no"]:
        raise EvaluationError("the tokenizer encodes none of Yes/yes/YES or none of No/no/NO as a single token "
                              "distinct from the other side: no yes/no answer to score")
    return out


def answer_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The yes and no id sets of `answer_tokens`."""
    tokens = answer_tokens(tokenizer)
    return tokens["yes"], tokens["no"]


def special_prefix(tokenizer: Any) -> list[int]:
    """The ids the tokenizer itself puts before a text (its BOS, for Llama/Gemma/Mistral-style tokenizers);
    whatever it appends (an EOS) is left out: the answer is read right after the prompt."""
    plain = list(tokenizer.encode("Comment", add_special_tokens=False))
    full = list(tokenizer.encode("Comment", add_special_tokens=True))
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return [int(t) for t in full[:i]]
    return []


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
    answers: dict[str, Any] = field(default_factory=dict)
    yes_ids: list[int] = field(default_factory=list)
    no_ids: list[int] = field(default_factory=list)
    _chat: bool = False
    _prefix: list[int] = field(default_factory=list)
    _keep_kw: str | None = None

    def load_tokenizer(self) -> None:
        """The tokenizer alone (seconds): prompts are measured and checked before the model is loaded."""
        try:
            with warnings.catch_warnings():  # tqdm.auto's "IProgress not found" in a notebook without ipywidgets
                warnings.filterwarnings("ignore", message=".*IProgress not found.*")
                import torch
                from transformers import AutoTokenizer
        except ImportError:
            raise EvaluationError("the evaluation path needs the eval extra: pip install 'loravet[eval]' "
                                  "(and torch==2.13.0 first)") from None
        self._torch = torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(self.base_path)
            except (OSError, ValueError) as exc:
                raise EvaluationError(f"cannot load the base's tokenizer from {self.base_path}: "
                                      f"{str(exc)[:200]}") from None
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.answers = answer_tokens(self.tokenizer)
        self.yes_ids, self.no_ids = self.answers["yes"], self.answers["no"]
        self._chat = bool(getattr(self.tokenizer, "chat_template", None))
        self._prefix = [] if self._chat else special_prefix(self.tokenizer)
        if not self._chat:
            bos = (f"with the tokenizer's own start token{'s' if len(self._prefix) > 1 else ''} "
                   + ", ".join(f"{self.tokenizer.convert_ids_to_tokens(i)!s} (id {i})" for i in self._prefix)
                   if self._prefix else "(the tokenizer adds no start token)")
            self.notes.append(f"the base tokenizer has no chat template: the plain prompt is used, {bos}")

    def load(self) -> None:
        if self.tokenizer is None:
            self.load_tokenizer()
        torch = self._torch
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.dtype == "auto":
            if self.device.startswith("cuda"):
                self.dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
            else:
                self.dtype = "float32"
        with warnings.catch_warnings(), _quiet_loading_bars():
            warnings.simplefilter("ignore")
            try:
                model: Any = AutoModelForCausalLM.from_pretrained(self.base_path, dtype=getattr(torch, self.dtype))
                self.model = model.to(self.device).eval()
            except (OSError, ValueError) as exc:
                raise EvaluationError(f"cannot load the base from {self.base_path}: {str(exc)[:200]}") from None
        params = inspect.signature(self.model.forward).parameters
        self._keep_kw = "logits_to_keep" if "logits_to_keep" in params else (
            "num_logits_to_keep" if "num_logits_to_keep" in params else None)

    def format_prompt(self, text: str) -> str:
        if self._chat:
            messages = [{"role": "user", "content": text}]
            try:
                out = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                         enable_thinking=False)
            except TypeError:
                out = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return str(out)
        return text + "\nAnswer:"

    def encode(self, text: str) -> list[int]:
        """The ids the model reads for one prompt: the chat template's text (it carries its own BOS), or the
        plain prompt after the tokenizer's own start token when there is no chat template."""
        ids = self.tokenizer.encode(self.format_prompt(text), add_special_tokens=False)
        return [*self._prefix, *(int(i) for i in ids)]

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

    def score(self, inputs: Sequence[list[int]], adapter: str | None,
              progress: Callable[[int], None] | None = None) -> np.ndarray:
        """P(yes) per encoded prompt for the bare base (adapter None) or one attached adapter.

        Batches are left-padded; position_ids follow the attention mask, so a row's score does not depend on
        the batch it lands in, for absolute-position models (GPT-2) as for RoPE ones."""
        torch = self._torch
        from peft import PeftModel

        att = self.adapters.get(adapter) if adapter else None
        model = self._seq_cls_model if att is not None and att.kind == "seq_cls" else self.model
        inner = model.get_base_model() if isinstance(model, PeftModel) else model
        takes_positions = "position_ids" in inspect.signature(inner.forward).parameters
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        out = np.full(len(inputs), np.nan, dtype=np.float64)
        pad = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)
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
                width = max(len(inputs[i]) for i in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for j, i in enumerate(idx):
                    seq = inputs[i]
                    ids[j, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                    mask[j, width - len(seq):] = 1
                enc: dict[str, Any] = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
                if takes_positions:
                    enc["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(self.device)
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


@contextlib.contextmanager
def _quiet_loading_bars() -> Iterator[None]:
    """transformers' own "Loading weights" bar: kept on a terminal, silenced in logs and notebooks (loravet
    shows its own progress there)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    quiet = not sys.stderr.isatty()
    if quiet and was_on:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if quiet and was_on:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]

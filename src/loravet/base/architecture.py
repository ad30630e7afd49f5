"""A base model's module tree, as PEFT sees it, described without weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BaseArchitecture", "ModuleSpec"]

# kinds LoRA can wrap, and the rest
LINEAR, EMBEDDING, CONV1D, CONTAINER, OTHER = "linear", "embedding", "conv1d", "container", "other"
LORA_WRAPPABLE = frozenset({LINEAR, EMBEDDING, CONV1D})


@dataclass(frozen=True)
class ModuleSpec:
    """One entry of `model.named_modules()`.

    `params` are the module's own parameters (recurse=False) with their shapes. For linear layers
    `in_features`/`out_features` are the logical sizes (quantized layers report the unpacked ones, as
    PEFT's quantized LoRA layers do). Conv1D (GPT-2) stores weight as [in, out]."""

    name: str
    kind: str
    type_name: str = ""
    in_features: int | None = None
    out_features: int | None = None
    params: tuple[tuple[str, tuple[int, ...]], ...] = ()
    quantized: bool = False

    @property
    def param_dict(self) -> dict[str, tuple[int, ...]]:
        return dict(self.params)


@dataclass
class BaseArchitecture:
    name: str
    model_type: str
    num_layers: int
    hidden_size: int
    modules: list[ModuleSpec]
    source: str  # "catalog" | "local" | "hub" | "meta"
    architectures: list[str] = field(default_factory=list)
    quantization: str | None = None
    output_embedding: str | None = "lm_head"
    """Name of the output embedding module (excluded by all-linear), None for heads like `score`."""
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    weights_folder: str | None = None
    """A folder holding the base's *.safetensors weights (local or in the hub cache), when there is one."""
    guessed_from: str | None = None
    """Set when the base was matched by family and size only (the name it was given): a guess, not a fact."""
    _by_name: dict[str, ModuleSpec] | None = field(default=None, repr=False, compare=False)

    def module(self, name: str) -> ModuleSpec | None:
        if self._by_name is None:
            self._by_name = {m.name: m for m in self.modules}
        return self._by_name.get(name)

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {}
        for m in self.modules:
            for pname, shape in m.params:
                out[f"{m.name}.{pname}" if m.name else pname] = shape
        return out

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "model_type": self.model_type, "num_layers": self.num_layers,
                               "hidden_size": self.hidden_size}
        if self.guessed_from is not None:
            out["guessed_from"] = self.guessed_from
        return out

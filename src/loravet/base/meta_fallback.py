"""The one lazy exception to "static checks never import torch": architectures no rule describes are
instantiated by transformers on the meta device (no memory, no weights) and their named_modules read.
Needs the `eval` extra; without it the base stays unknown, said plainly."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from loravet.base.architecture import (
    CONTAINER,
    CONV1D,
    EMBEDDING,
    LINEAR,
    OTHER,
    BaseArchitecture,
    ModuleSpec,
)
from loravet.base.rules import RuleError

__all__ = ["architecture_from_meta"]


def architecture_from_meta(cfg: dict[str, Any], name: str, source: str) -> BaseArchitecture:
    try:
        # heavy and optional (the `eval` extra): imported only for a base no rule describes
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise RuleError(
            f"model_type {cfg.get('model_type')!r} has no built-in rule and transformers is not "
            "installed (pip install 'loravet[eval]')"
        ) from None
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str):
        raise RuleError("config.json has no model_type")
    config = _hf_config(cfg, model_type)
    archs = [a for a in cfg.get("architectures") or [] if isinstance(a, str)]
    model = _meta_model(archs, config, model_type)
    mods = _module_specs(model)
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out_name = next((n for n, m in model.named_modules() if m is out_emb), None) if out_emb is not None else None
    layers: Any = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None) or 0
    hidden: Any = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or getattr(config, "dim", 0)
    arch = BaseArchitecture(
        name=name,
        model_type=model_type,
        num_layers=int(layers),
        hidden_size=int(hidden),
        modules=mods,
        source=source,
        architectures=[type(model).__name__],
        output_embedding=out_name,
        config=cfg,
    )
    arch.notes.append("module tree from transformers on the meta device (no built-in rule)")
    return arch


def _hf_config(cfg: Mapping[str, object], model_type: str) -> Any:
    """transformers' config object for config.json (quantization dropped: the module tree is the float one)."""
    from transformers import AutoConfig  # heavy, optional: see architecture_from_meta

    kwargs = {k: v for k, v in cfg.items() if k not in ("model_type", "transformers_version", "_name_or_path")}
    kwargs.pop("quantization_config", None)
    try:
        return AutoConfig.for_model(model_type, **kwargs)
    except Exception as exc:
        raise RuleError(f"transformers cannot build a config for model_type {model_type!r}: {str(exc)[:120]}") from None


def _meta_model(archs: list[str], config: Any, model_type: str) -> Any:
    """The model on the meta device: the first class config.json names that builds, else the first Auto class."""
    import torch  # heavy, optional: see architecture_from_meta
    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for arch_name in archs:
            cls = getattr(transformers, arch_name, None)
            if cls is None:
                continue
            try:
                with torch.device("meta"):
                    return cls(config)
            except Exception:
                continue
        for auto in ("AutoModelForCausalLM", "AutoModelForSequenceClassification", "AutoModel"):
            try:
                with torch.device("meta"):
                    return getattr(transformers, auto).from_config(config)
            except Exception:
                continue
    raise RuleError(f"transformers cannot instantiate model_type {model_type!r}")


def _module_specs(model: Any) -> list[ModuleSpec]:
    """Every named module as loravet's ModuleSpec (kind, features, own parameters)."""
    import torch  # heavy, optional: see architecture_from_meta

    conv1d_types: tuple[type, ...] = ()
    try:
        from transformers.pytorch_utils import Conv1D

        conv1d_types = (Conv1D,)
    except ImportError:  # pragma: no cover
        pass
    mods: list[ModuleSpec] = []
    for mname, mod in model.named_modules():
        params = tuple((p, tuple(t.shape)) for p, t in mod.named_parameters(recurse=False))
        tname = type(mod).__name__
        if isinstance(mod, torch.nn.Linear):
            mods.append(ModuleSpec(mname, LINEAR, tname, mod.in_features, mod.out_features, params))
        elif isinstance(mod, torch.nn.Embedding):
            mods.append(ModuleSpec(mname, EMBEDDING, tname, mod.num_embeddings, mod.embedding_dim, params))
        elif conv1d_types and isinstance(mod, conv1d_types):
            w = getattr(mod, "weight").shape  # noqa: B009
            mods.append(ModuleSpec(mname, CONV1D, tname, w[0], w[1], params))
        elif params:
            mods.append(ModuleSpec(mname, OTHER, tname, params=params))
        elif len(list(mod.children())):
            mods.append(ModuleSpec(mname, CONTAINER, tname))
        else:
            mods.append(ModuleSpec(mname, OTHER, tname))
    return mods

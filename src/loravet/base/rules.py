"""Module trees from config.json alone, for the architectures people actually adapt.

Each rule reproduces the `named_modules()` of the transformers class (names, types, parameter shapes,
in the same order); tests compare every rule with transformers' own meta-device model. Model types
without a rule go to the meta-device fallback (see :mod:`loravet.base.meta_fallback`).
"""

from __future__ import annotations

from collections.abc import Callable
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

__all__ = ["RULE_MODEL_TYPES", "architecture_from_config"]


class RuleError(ValueError):
    pass


def _int(cfg: dict[str, Any], *names: str, default: int | None = None) -> int:
    for n in names:
        v = cfg.get(n)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    if default is not None:
        return default
    raise RuleError(f"config.json lacks {names[0]}")


def _linear(name: str, out_f: int, in_f: int, bias: bool) -> ModuleSpec:
    params: tuple[tuple[str, tuple[int, ...]], ...] = (("weight", (out_f, in_f)),)
    if bias:
        params += (("bias", (out_f,)),)
    return ModuleSpec(name, LINEAR, "Linear", in_f, out_f, params)


def _conv1d(name: str, in_f: int, out_f: int) -> ModuleSpec:
    return ModuleSpec(name, CONV1D, "Conv1D", in_f, out_f, (("weight", (in_f, out_f)), ("bias", (out_f,))))


def _embedding(name: str, num: int, dim: int, type_name: str = "Embedding") -> ModuleSpec:
    return ModuleSpec(name, EMBEDDING, type_name, num, dim, (("weight", (num, dim)),))


def _norm(name: str, dim: int, type_name: str, bias: bool = False) -> ModuleSpec:
    params: tuple[tuple[str, tuple[int, ...]], ...] = (("weight", (dim,)),)
    if bias:
        params += (("bias", (dim,)),)
    return ModuleSpec(name, OTHER, type_name, params=params)


def _other(name: str, type_name: str) -> ModuleSpec:
    return ModuleSpec(name, OTHER, type_name)


def _container(name: str, type_name: str) -> ModuleSpec:
    return ModuleSpec(name, CONTAINER, type_name)


_PREFIX = {"qwen2": "Qwen2", "qwen3": "Qwen3", "llama": "Llama", "mistral": "Mistral", "gemma": "Gemma",
           "gemma2": "Gemma2", "gemma3_text": "Gemma3", "phi3": "Phi3"}


def _llama_like(cfg: dict[str, Any], mt: str) -> tuple[list[ModuleSpec], int, int, bool]:
    hidden = _int(cfg, "hidden_size")
    inter = _int(cfg, "intermediate_size")
    layers = _int(cfg, "num_hidden_layers")
    heads = _int(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    vocab = _int(cfg, "vocab_size")
    head_dim_value = cfg.get("head_dim")
    head_dim: int = head_dim_value if isinstance(head_dim_value, int) else hidden // heads
    p = _PREFIX[mt]
    qkv_bias = mt == "qwen2" or bool(cfg.get("attention_bias", False))
    o_bias = bool(cfg.get("attention_bias", False)) and mt != "qwen2"
    mlp_bias = bool(cfg.get("mlp_bias", False))
    norm_t = f"{p}RMSNorm"
    model_t = {"gemma3_text": "Gemma3TextModel"}.get(mt, f"{p}Model")
    emb_t = {"gemma": "GemmaTextScaledWordEmbedding", "gemma2": "Gemma2TextScaledWordEmbedding",
             "gemma3_text": "Gemma3TextScaledWordEmbedding"}.get(mt, "Embedding")
    act_t = "GELUTanh" if mt.startswith("gemma") else "SiLUActivation"
    mods = [_container("model", model_t), _embedding("model.embed_tokens", vocab, hidden, emb_t),
            _container("model.layers", "ModuleList")]
    for i in range(layers):
        lp = f"model.layers.{i}"
        mods += [_container(lp, f"{p}DecoderLayer"), _container(f"{lp}.self_attn", f"{p}Attention")]
        if mt == "phi3":
            mods += [_linear(f"{lp}.self_attn.o_proj", hidden, heads * head_dim, False),
                     _linear(f"{lp}.self_attn.qkv_proj", (heads + 2 * kv) * head_dim, hidden, False),
                     _container(f"{lp}.mlp", "Phi3MLP"),
                     _linear(f"{lp}.mlp.gate_up_proj", 2 * inter, hidden, False),
                     _linear(f"{lp}.mlp.down_proj", hidden, inter, False),
                     _other(f"{lp}.mlp.activation_fn", "SiLUActivation"),
                     _norm(f"{lp}.input_layernorm", hidden, norm_t),
                     _norm(f"{lp}.post_attention_layernorm", hidden, norm_t),
                     _other(f"{lp}.resid_attn_dropout", "Dropout"),
                     _other(f"{lp}.resid_mlp_dropout", "Dropout")]
            continue
        mods += [_linear(f"{lp}.self_attn.q_proj", heads * head_dim, hidden, qkv_bias),
                 _linear(f"{lp}.self_attn.k_proj", kv * head_dim, hidden, qkv_bias),
                 _linear(f"{lp}.self_attn.v_proj", kv * head_dim, hidden, qkv_bias),
                 _linear(f"{lp}.self_attn.o_proj", hidden, heads * head_dim, o_bias)]
        if mt in ("qwen3", "gemma3_text"):
            mods += [_norm(f"{lp}.self_attn.q_norm", head_dim, norm_t),
                     _norm(f"{lp}.self_attn.k_norm", head_dim, norm_t)]
        mods += [_container(f"{lp}.mlp", f"{p}MLP"),
                 _linear(f"{lp}.mlp.gate_proj", inter, hidden, mlp_bias),
                 _linear(f"{lp}.mlp.up_proj", inter, hidden, mlp_bias),
                 _linear(f"{lp}.mlp.down_proj", hidden, inter, mlp_bias),
                 _other(f"{lp}.mlp.act_fn", act_t),
                 _norm(f"{lp}.input_layernorm", hidden, norm_t),
                 _norm(f"{lp}.post_attention_layernorm", hidden, norm_t)]
        if mt in ("gemma2", "gemma3_text"):
            mods += [_norm(f"{lp}.pre_feedforward_layernorm", hidden, norm_t),
                     _norm(f"{lp}.post_feedforward_layernorm", hidden, norm_t)]
    mods += [_norm("model.norm", hidden, norm_t), _other("model.rotary_emb", f"{p}RotaryEmbedding")]
    return mods, layers, hidden, True


def _gpt2(cfg: dict[str, Any], mt: str) -> tuple[list[ModuleSpec], int, int, bool]:
    hidden = _int(cfg, "n_embd", "hidden_size")
    layers = _int(cfg, "n_layer", "num_hidden_layers")
    vocab = _int(cfg, "vocab_size")
    positions = _int(cfg, "n_positions", "max_position_embeddings", default=1024)
    inner_value = cfg.get("n_inner")
    inner: int = inner_value if isinstance(inner_value, int) else 4 * hidden
    mods = [_container("transformer", "GPT2Model"), _embedding("transformer.wte", vocab, hidden),
            _embedding("transformer.wpe", positions, hidden), _other("transformer.drop", "Dropout"),
            _container("transformer.h", "ModuleList")]
    for i in range(layers):
        lp = f"transformer.h.{i}"
        mods += [_container(lp, "GPT2Block"), _norm(f"{lp}.ln_1", hidden, "LayerNorm", bias=True),
                 _container(f"{lp}.attn", "GPT2Attention"),
                 _conv1d(f"{lp}.attn.c_attn", hidden, 3 * hidden), _conv1d(f"{lp}.attn.c_proj", hidden, hidden),
                 _other(f"{lp}.attn.attn_dropout", "Dropout"), _other(f"{lp}.attn.resid_dropout", "Dropout"),
                 _norm(f"{lp}.ln_2", hidden, "LayerNorm", bias=True), _container(f"{lp}.mlp", "GPT2MLP"),
                 _conv1d(f"{lp}.mlp.c_fc", hidden, inner), _conv1d(f"{lp}.mlp.c_proj", inner, hidden),
                 _other(f"{lp}.mlp.act", "NewGELUActivation"), _other(f"{lp}.mlp.dropout", "Dropout")]
    mods.append(_norm("transformer.ln_f", hidden, "LayerNorm", bias=True))
    return mods, layers, hidden, True


def _gpt_neox(cfg: dict[str, Any], mt: str) -> tuple[list[ModuleSpec], int, int, bool]:
    hidden = _int(cfg, "hidden_size")
    inter = _int(cfg, "intermediate_size")
    layers = _int(cfg, "num_hidden_layers")
    vocab = _int(cfg, "vocab_size")
    bias = bool(cfg.get("attention_bias", True))
    mods = [_container("gpt_neox", "GPTNeoXModel"), _embedding("gpt_neox.embed_in", vocab, hidden),
            _other("gpt_neox.emb_dropout", "Dropout"), _container("gpt_neox.layers", "ModuleList")]
    for i in range(layers):
        lp = f"gpt_neox.layers.{i}"
        mods += [_container(lp, "GPTNeoXLayer"),
                 _norm(f"{lp}.input_layernorm", hidden, "LayerNorm", bias=True),
                 _norm(f"{lp}.post_attention_layernorm", hidden, "LayerNorm", bias=True),
                 _other(f"{lp}.post_attention_dropout", "Dropout"), _other(f"{lp}.post_mlp_dropout", "Dropout"),
                 _container(f"{lp}.attention", "GPTNeoXAttention"),
                 _linear(f"{lp}.attention.query_key_value", 3 * hidden, hidden, bias),
                 _linear(f"{lp}.attention.dense", hidden, hidden, bias),
                 _container(f"{lp}.mlp", "GPTNeoXMLP"),
                 _linear(f"{lp}.mlp.dense_h_to_4h", inter, hidden, True),
                 _linear(f"{lp}.mlp.dense_4h_to_h", hidden, inter, True),
                 _other(f"{lp}.mlp.act", "GELUActivation")]
    mods += [_norm("gpt_neox.final_layer_norm", hidden, "LayerNorm", bias=True),
             _other("gpt_neox.rotary_emb", "GPTNeoXRotaryEmbedding")]
    return mods, layers, hidden, True


_BUILDERS: dict[str, Callable[[dict[str, Any], str], tuple[list[ModuleSpec], int, int, bool]]] = {
    **{mt: _llama_like for mt in _PREFIX},
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
}
RULE_MODEL_TYPES = frozenset(_BUILDERS)

_CAUSAL = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "llama": "LlamaForCausalLM",
           "mistral": "MistralForCausalLM", "gemma": "GemmaForCausalLM", "gemma2": "Gemma2ForCausalLM",
           "gemma3_text": "Gemma3ForCausalLM", "phi3": "Phi3ForCausalLM", "gpt2": "GPT2LMHeadModel",
           "gpt_neox": "GPTNeoXForCausalLM"}
_SEQ_CLS = {mt: name.replace("ForCausalLM", "ForSequenceClassification").replace(
    "GPT2LMHeadModel", "GPT2ForSequenceClassification") for mt, name in _CAUSAL.items()}


def head_kind(architectures: list[str]) -> str:
    arch = architectures[0] if architectures else ""
    if arch.endswith("ForSequenceClassification"):
        return "seq_cls"
    return "causal_lm"


def architecture_from_config(
    cfg: dict[str, Any], name: str, source: str, head: str | None = None
) -> BaseArchitecture:
    """Build the module tree for a config.json whose model_type has a rule (raises RuleError if not)."""
    mt = cfg.get("model_type")
    if not isinstance(mt, str) or mt not in _BUILDERS:
        raise RuleError(f"no rule for model_type {mt!r}")
    mods, layers, hidden, _ = _BUILDERS[mt](cfg, mt)
    archs = [a for a in cfg.get("architectures") or [] if isinstance(a, str)]
    head = head or head_kind(archs)
    if head == "seq_cls" and archs and not archs[0].endswith("ForSequenceClassification"):
        archs = []
    output_embedding: str | None
    root = mods[0]
    if head != "seq_cls" and archs and archs[0] == root.type_name:
        # Saved as the bare model class (LlamaModel, GPT2Model, ...): loaded as such, its modules have no
        # `model.` / `transformer.` prefix and there is no head.
        cut = len(root.name) + 1
        bare = [ModuleSpec(m.name[cut:], m.kind, m.type_name, m.in_features, m.out_features, m.params, m.quantized)
                for m in mods[1:]]
        bare.insert(0, _container("", root.type_name))
        quant = cfg.get("quantization_config")
        qmethod = quant.get("quant_method") if isinstance(quant, dict) else None
        return BaseArchitecture(name=name, model_type=mt, num_layers=layers, hidden_size=hidden, modules=bare,
                                source=source, architectures=archs, quantization=qmethod, output_embedding=None,
                                config=cfg)
    if head == "seq_cls":
        labels = cfg.get("num_labels")
        if not isinstance(labels, int):
            id2label = cfg.get("id2label")
            labels = len(id2label) if isinstance(id2label, dict) and id2label else 2
        mods.append(_linear("score", labels, hidden, False))
        output_embedding = None
        archs = archs or [_SEQ_CLS[mt]]
    else:
        vocab = _int(cfg, "vocab_size")
        mods.append(_linear("lm_head", vocab, hidden, False))
        output_embedding = "lm_head"
        archs = archs or [_CAUSAL[mt]]
    root_type = archs[0]
    mods.insert(0, _container("", root_type))
    quant = cfg.get("quantization_config")
    qmethod = quant.get("quant_method") if isinstance(quant, dict) else None
    return BaseArchitecture(name=name, model_type=mt, num_layers=layers, hidden_size=hidden, modules=mods,
                            source=source, architectures=archs, quantization=qmethod,
                            output_embedding=output_embedding, config=cfg)

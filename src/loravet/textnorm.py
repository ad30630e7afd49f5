"""SPEC's "same row": the one normalisation every comparison of comment texts uses (provenance, leakage,
the demo's data)."""

from __future__ import annotations

import unicodedata

__all__ = ["normalise_text"]


def normalise_text(text: str) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())

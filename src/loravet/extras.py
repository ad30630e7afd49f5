"""What the optional `eval` extra (torch, transformers, peft) makes possible, found without importing it.

Kept apart from loravet.checks.replay so that asking costs nothing: a static check asks whether it could
replay, and imports the replay only when it does.
"""

from __future__ import annotations

import functools
import importlib.util

__all__ = ["peft_version", "replay_available"]


def replay_available() -> bool:
    """torch, transformers and peft are installed (found without importing them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft"))


@functools.cache
def peft_version() -> str | None:
    """The installed peft's version (what a replay runs), looked up once per process."""
    try:
        from importlib.metadata import version

        return version("peft")
    except Exception:
        return None

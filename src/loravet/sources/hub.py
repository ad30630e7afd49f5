"""The huggingface_hub seam: is the hub reachable at all (checked once, quickly)."""

from __future__ import annotations

import os
import socket
from functools import lru_cache

__all__ = ["hub_offline"]


@lru_cache(maxsize=1)
def _reachable() -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    name, _, port = host.partition(":")
    try:
        with socket.create_connection((name, int(port or 443)), timeout=2):
            return True
    except OSError:
        return False


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set or the hub cannot be reached: use the local cache only."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    return not _reachable()

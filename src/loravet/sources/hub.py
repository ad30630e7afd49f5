"""The huggingface_hub seam: is loravet told to stay offline (HF_HUB_OFFLINE)?

No reachability probe: whether the hub answers is learnt from the requests themselves, through
huggingface_hub's own session (HF_ENDPOINT, HF_TOKEN and proxies honoured), and a failure is one clear
line (loravet.sources.remote.hub_error_line), never a silent switch to the cache.
"""

from __future__ import annotations

__all__ = ["hub_offline"]


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set: use the local huggingface_hub cache only."""
    from loravet.sources.remote import offline

    return offline()

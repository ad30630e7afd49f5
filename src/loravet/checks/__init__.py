"""Checks: small functions of one adapter's context (or of all of them) that return findings. loravet.pipeline lists
them in order with the finding codes each may raise."""

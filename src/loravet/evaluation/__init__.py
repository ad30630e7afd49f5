"""Evaluation beside the checks: the adapters run on labelled rows (ACRC by default), scored, compared and ensembled."""

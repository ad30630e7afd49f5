"""The base architecture: a model's module tree as PEFT sees it, from a catalog entry, a config.json (local or from
the hub) or a meta-device build, never from its weights."""

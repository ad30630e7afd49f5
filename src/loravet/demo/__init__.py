"""The built-in demo (`loravet demo`): a k-fold set, an impostor, an inert adapter and a malicious pickle, built
locally, then vetted. run: the command; base_model: the demo's base (converted SmolLM2 or a tiny model);
training: the real LoRA training of its k-fold adapters. The adapters, data and scenarios it shares with the
tests come from loravet.testing."""

"""Adapter files, read without running them: the config, the weight file (safetensors, torch zip or legacy .bin),
pickles interpreted symbolically, training artifacts, and the bounds every read is held to."""

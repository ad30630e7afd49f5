"""Sources: what an ADAPTER or BASE argument names (a folder, a .zip, an hf: id), made into local files to read,
header-only for the hub."""

"""The built-in demo: the seed's situation in miniature, built locally, then vetted."""

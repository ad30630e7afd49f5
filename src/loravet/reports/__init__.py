"""Reporters: they read a Report and know nothing about checks."""

"""Hydra configs (a package so that `python -m experiments.*` finds them installed or not)."""

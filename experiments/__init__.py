"""Thin Hydra apps around the nst library; importing the package registers the config schema and resolvers."""
from experiments import config as _config  # noqa: F401

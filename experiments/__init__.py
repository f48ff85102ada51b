"""Thin Hydra apps around the nst library; importing the package registers our config resolvers."""
from experiments import resolvers as _resolvers  # noqa: F401

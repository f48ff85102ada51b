"""nst: Gatys et al. 2016 neural style transfer as a small library (no Hydra, no printing)."""
__version__ = "0.1.0"

"""tf-pgn: adversarial training with perturbation generator networks (Lee, Han, Lee 2019)."""
__version__ = '0.1.0'

"""padless: variable-length Transformer encoders on FPGAs, integer-only, sparse, never padded."""

__version__ = "0.1.0"

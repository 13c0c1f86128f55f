"""snnc's version (one home: the package, built code and cache keys read it here)."""
__version__ = "0.2.0"

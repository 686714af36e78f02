"""kb: a self-hosted knowledge base with a deflection assistant."""

__version__ = "0.1.0"

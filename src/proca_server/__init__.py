"""proca-server: a backend for online advocacy campaigns, API-compatible with Proca."""

__version__ = "0.1.0"

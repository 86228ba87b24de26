"""plan layer (see docs/ARCHITECTURE.md)."""

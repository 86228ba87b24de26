"""match layer (see docs/ARCHITECTURE.md)."""

"""archive layer (see docs/ARCHITECTURE.md)."""

"""workflow layer (see docs/ARCHITECTURE.md)."""

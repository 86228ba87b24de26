"""iod layer (see docs/ARCHITECTURE.md)."""

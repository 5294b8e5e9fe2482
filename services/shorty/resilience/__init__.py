"""Cross-cutting protection against failing dependencies (circuit breakers)."""

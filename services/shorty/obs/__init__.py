"""Observability: structured logs (metrics and traces join in later work)."""

"""The live system view's numbers, read from each service's own metrics and
readiness every second (docs/ui.md)."""

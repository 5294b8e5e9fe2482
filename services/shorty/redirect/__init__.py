"""The public redirect service (`shorty serve redirect`): the hot path."""

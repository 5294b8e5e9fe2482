"""The JSON API service (`shorty serve api`)."""

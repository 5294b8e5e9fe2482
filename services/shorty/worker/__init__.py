"""The worker (`shorty serve worker`): background work off the request path."""

"""Rate limiting: an in-process token bucket (the Redis-backed limiter joins later)."""

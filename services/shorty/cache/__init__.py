"""Redis adapters: the client and the link cache."""

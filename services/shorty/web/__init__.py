"""HTTP pieces both services share: problem responses and health probes."""

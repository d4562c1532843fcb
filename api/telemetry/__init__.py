"""What the service tells its operator: the logs (request ids, the access line) and metrics."""

"""The naive baseline the service must beat."""

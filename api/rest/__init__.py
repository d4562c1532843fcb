"""The REST transport: JSON routes over the service layer."""

"""The shipped difficulty model (data only)."""

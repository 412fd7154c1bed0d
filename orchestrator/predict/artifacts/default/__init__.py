"""The shipped predictor artifact (see docs/predictor.md)."""

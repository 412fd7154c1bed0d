"""Trained predictor artifacts (data only; a package so setuptools ships the files)."""

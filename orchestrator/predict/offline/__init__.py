"""Offline predictor tooling: data loading, training, evaluation (in-distribution and
leave-one-source-out), baselines, and folding labelled requests into the traffic store.

Nothing here is imported by the serving runtime (`orchestrator.predict.Predictor`); it needs
LightGBM training, scipy and the shared data, and runs from the CLI (`orchestrator predictor`).
"""

"""The baselines the model is compared with, as pure functions of the artifact's parameters.

- constant: the training median / 90th percentile, whatever the request;
- length regression: log1p(output) linear in log1p(prompt tokens), residual quantiles on top;
- bucket classifier (the S3 approach): classify the request into 5 output-length buckets and
  predict the bucket's median / 90th percentile.
All return log1p(tokens per choice) pairs (p50, p90) for a profile-free average model.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from orchestrator.predict.artifact import BaselineParams

BASELINES = ("constant_median", "length_regression", "bucket_classifier")


def constant(params: BaselineParams) -> tuple[float, float]:
    return params.constant_log_p50, params.constant_log_p90


def length_regression(params: BaselineParams, log_prompt_tokens: float) -> tuple[float, float]:
    a, b = params.length_coef
    centre = a + b * log_prompt_tokens
    return centre + params.length_p50_resid, max(centre + params.length_p90_resid, centre)


def bucket_classifier(
    params: BaselineParams, booster: lgb.Booster, row: np.ndarray
) -> tuple[float, float]:
    probs = booster.predict(row.reshape(1, -1), num_threads=1)[0]
    k = int(np.argmax(probs))
    return params.bucket_log_p50[k], params.bucket_log_p90[k]


def bucket_of(tokens: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    """Bucket index 0..len(edges) of each token count (right-closed at each edge)."""
    return np.searchsorted(np.asarray(edges), np.asarray(tokens), side="left")

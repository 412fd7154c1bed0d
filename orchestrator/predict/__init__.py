"""Token-budget predictor: how many output and thinking tokens a request will need.

Public surface (see docs/predictor.md):
- `predict(request, profile=None) -> Prediction` with the process-wide `Predictor.default()`;
- `Predictor`: `predict`, `predict_many`, `featurize`, `observe` (per-profile calibration);
- `Prediction`, `RequestFeatures`, `PredictorInputError` (a ValueError: HTTP 400).
"""

from orchestrator.predict.predictor import Predictor, normalize_model_name, predict
from orchestrator.predict.request import PredictorInputError
from orchestrator.predict.schema import Prediction, PredictorSettings, QueryClass, RequestFeatures

__all__ = [
    "Prediction",
    "Predictor",
    "PredictorInputError",
    "PredictorSettings",
    "QueryClass",
    "RequestFeatures",
    "normalize_model_name",
    "predict",
]

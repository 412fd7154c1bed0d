"""One-row LightGBM predictions on the request path, through LightGBM's single-row fast API.

    predict_one = SingleRowPredictor(booster)
    value = predict_one(row)        # row: 1 x n float32; == booster.predict(row)[0]

`Booster.predict` rebuilds a predictor per call (a copy of the booster's parameters, the input
checks and conversion, the output array): ~0.04 ms of Python per call, three calls per request
at the ingress. LightGBM's C API has a path made for one row at a time
(`LGBM_BoosterPredictForMatSingleRowFastInit` once, `..SingleRowFast` per row), which this wraps.

Invariants: the value is `booster.predict(row, num_threads=1)[0]` (the same iterations, the
objective's output transform; test); the booster is not changed after wrapping (the artifact's
boosters are not); calls are serialised by a lock (the fast handle holds one row buffer). The
call keeps the GIL (LightGBM's library loaded again as a `ctypes.PyDLL`, the same loaded
library): a ~3 us call is shorter than giving the GIL up, which lets another thread of the
replica in (its event loops, the writer threads) and then waits to take it back, up to the
interpreter's switch interval, three times per request.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np
from lightgbm import basic

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: the objective's output (what `predict` returns)
_DTYPE_FLOAT32 = 0  # C_API_DTYPE_FLOAT32
# the one-row call through the same library, without releasing the GIL (see above)
_PREDICT_ONE = ctypes.PyDLL(basic._LIB._name).LGBM_BoosterPredictForMatSingleRowFast


class SingleRowPredictor:
    """`booster.predict(row)[0]` for one float32 row, without the per-call set-up."""

    def __init__(self, booster: Any):
        if booster.num_model_per_iteration() != 1:  # a multiclass booster gives one per class
            raise ValueError("a booster with one output per row expected")
        self.booster = booster  # kept alive: the fast handle points into it
        self.columns = booster.num_feature()
        best = booster.best_iteration
        self._handle = ctypes.c_void_p()
        basic._safe_call(
            basic._LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(best if best > 0 else -1),  # as `predict`: the best, else all
                ctypes.c_int(_DTYPE_FLOAT32),
                ctypes.c_int32(self.columns),
                basic._c_str("num_threads=1"),
                ctypes.byref(self._handle),
            )
        )
        self._out = np.zeros(1, dtype=np.float64)  # one output (checked above)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64(0)
        self._lock = threading.Lock()

    def __call__(self, row: np.ndarray) -> float:
        """The prediction for a 1 x `columns` float32 row (C-contiguous)."""
        if row.dtype != np.float32 or row.size != self.columns or not row.flags.c_contiguous:
            raise ValueError(f"one C-contiguous float32 row of {self.columns} values expected")
        with self._lock:
            basic._safe_call(
                _PREDICT_ONE(
                    self._handle,
                    ctypes.c_void_p(row.ctypes.data),  # the address (no ctypes cast object)
                    ctypes.byref(self._out_len),
                    self._out_ptr,
                )
            )
            return float(self._out[0])

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            basic._LIB.LGBM_FastConfigFree(handle)

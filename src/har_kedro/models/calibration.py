"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

One scalar ``T`` divides the logits of a trained classifier: ``softmax(z / T)``. It is fitted on the
validation split by minimising the negative log-likelihood, so the predictions (the arg-max) stay the
same and only the confidence changes: ``T > 1`` softens an over-confident model. scipy's bounded
scalar minimiser does the fit (on ``log T``, deterministic); the NLL is torch's cross-entropy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize_scalar

# T is searched in [1/20, 20]: wider than any calibrated network needs, and it keeps a degenerate
# validation split (every image right with margin) from driving T to 0 or infinity.
LOG_T_BOUNDS = (-math.log(20.0), math.log(20.0))


def negative_log_likelihood(logits: torch.Tensor, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean NLL of ``softmax(logits / temperature)`` at the true labels."""
    targets = torch.from_numpy(np.array(labels, dtype=np.int64))  # a copy: the cache's labels are a read-only memmap
    return float(torch.nn.functional.cross_entropy(logits.double() / temperature, targets))


def fit_temperature(logits: torch.Tensor, labels: np.ndarray) -> float:
    """The ``T`` that minimises the NLL of ``softmax(logits / T)``; 1.0 without images."""
    if len(logits) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, math.exp(log_t)),
        bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def calibration_record(val_logits: torch.Tensor, val_labels: np.ndarray) -> dict[str, float]:
    """What ``run_info["calibration"]`` holds: the fitted temperature and the val NLL before and after."""
    if len(val_logits) == 0:
        return {"temperature": 1.0, "val_nll": float("nan"), "val_nll_scaled": float("nan")}
    temperature = fit_temperature(val_logits, val_labels)
    return {
        "temperature": temperature,
        "val_nll": negative_log_likelihood(val_logits, val_labels),
        "val_nll_scaled": negative_log_likelihood(val_logits, val_labels, temperature),
    }

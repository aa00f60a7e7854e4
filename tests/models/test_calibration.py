"""Temperature scaling recovers the temperature that generated the labels, and never changes a prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from har_kedro.models.calibration import calibration_record, fit_temperature, negative_log_likelihood


def _sampled(temperature: float, n: int = 4000, classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Logits, and labels drawn from softmax(logits / temperature): the best fit is that temperature."""
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.normal(scale=3.0, size=(n, classes)))
    probabilities = torch.softmax(logits / temperature, dim=1).numpy()
    labels = np.array([rng.choice(classes, p=p) for p in probabilities])
    return logits.float(), labels


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_the_fitted_temperature_is_the_one_that_made_the_labels(temperature):
    logits, labels = _sampled(temperature)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(temperature, rel=0.1)
    record = calibration_record(logits, labels)
    assert record["temperature"] == fitted and record["val_nll_scaled"] < record["val_nll"]
    assert negative_log_likelihood(logits, labels, fitted) <= min(negative_log_likelihood(logits, labels, t) for t in (0.8 * fitted, 1.25 * fitted))


def test_a_perfectly_separated_split_stops_at_the_bound_and_no_images_give_one():
    # every image right with margin: the NLL only falls as T shrinks (until it is 0 in float64), so the fit
    # sharpens as far as it can tell, and the bound keeps T from 0
    fitted = fit_temperature(torch.eye(4) * 5, np.arange(4))
    assert 1 / 20 <= fitted < 0.2 and negative_log_likelihood(torch.eye(4) * 5, np.arange(4), fitted) < 1e-15
    assert fit_temperature(torch.empty(0, 4), np.zeros(0, dtype=int)) == 1.0
    assert calibration_record(torch.empty(0, 4), np.zeros(0, dtype=int))["temperature"] == 1.0

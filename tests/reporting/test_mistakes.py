"""The report's mistakes: the most confident wrong predictions, the most confused pairs, their thumbnails,
and the per-class F1 table, against hand-built predictions."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import torch
from PIL import Image

from har_kedro.reporting.html_report import mistakes_section, per_class_f1_table
from har_kedro.reporting.metrics import per_class_table
from har_kedro.reporting.mistakes import THUMBNAIL_SIDE, confident_mistakes, confused_pairs, shown_images, thumbnail_uri, thumbnails
from har_kedro.reporting.runs import ModelRun
from har_kedro.training.runner import predictions_frame
from tests.reporting.conftest import CLASSES, make_history


def _run(name: str, rows: list[tuple[int, int, float]]) -> ModelRun:
    """``rows`` of (true class, predicted class, probability of the prediction); the rest spread evenly."""
    probabilities = np.zeros((len(rows), len(CLASSES)))
    for i, (_, predicted, p) in enumerate(rows):
        probabilities[i] = (1 - p) / (len(CLASSES) - 1)
        probabilities[i, predicted] = p
    logits = torch.from_numpy(np.log(probabilities))
    frame = predictions_frame(logits, np.array([t for t, _, _ in rows]), [f"img_{i}" for i in range(len(rows))], CLASSES)
    return ModelRun(name, {}, make_history(1), frame)


# calling=0, clapping=1, cycling=2 ... img_1 and img_4 tie at 0.9: the smaller id comes first.
ROWS = [(0, 0, 0.8), (0, 1, 0.9), (0, 1, 0.5), (1, 2, 0.7), (0, 1, 0.9), (2, 2, 0.99), (1, 2, 0.6), (3, 0, 0.95)]


def test_confident_mistakes_are_ordered_by_probability_then_id():
    mistakes = confident_mistakes(_run("clip", ROWS), count=4)
    assert [(m.image_id, m.label, m.predicted) for m in mistakes] == [
        ("img_7", "dancing", "calling"), ("img_1", "calling", "clapping"), ("img_4", "calling", "clapping"), ("img_3", "clapping", "cycling"),
    ]
    assert [round(m.probability, 4) for m in mistakes] == [0.95, 0.9, 0.9, 0.7]


def test_confused_pairs_count_share_and_example():
    pairs = confused_pairs(_run("clip", ROWS))
    assert [(p.label, p.predicted, p.count) for p in pairs] == [("calling", "clapping", 3), ("clapping", "cycling", 2), ("dancing", "calling", 1)]
    assert pairs[0].share == 3 / 4 and pairs[1].share == 1.0  # 4 calling images, 2 clapping images
    assert pairs[0].example.image_id == "img_1" and pairs[1].example.image_id == "img_3"


def test_a_perfect_model_has_no_mistakes_and_no_pairs():
    run = _run("clip", [(0, 0, 0.9), (1, 1, 0.8)])
    assert confident_mistakes(run) == [] and confused_pairs(run) == []
    assert "No mistake on the test split." in mistakes_section([run], {})


def test_thumbnails_are_small_jpegs_of_the_cached_image_and_deterministic():
    images = np.random.default_rng(0).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    images[1] = 200  # a flat grey image
    found = thumbnails(["img_1", "elsewhere"], ["img_0", "img_1", "img_2"], images)
    assert list(found) == ["img_1"]  # an id the cache does not hold gets no thumbnail
    uri = found["img_1"]
    assert uri.startswith("data:image/jpeg;base64,") and uri == thumbnail_uri(images[1])
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert decoded.format == "JPEG" and decoded.size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    assert np.abs(np.asarray(decoded.convert("RGB"), dtype=float) - 200).max() < 3


def test_the_mistakes_section_embeds_the_thumbnails_it_shows():
    runs = [_run("clip", ROWS), _run("siglip", [(0, 1, 0.6), (1, 1, 0.9)])]
    ids = shown_images(runs)
    assert ids == ["img_0", "img_1", "img_2", "img_3", "img_4", "img_6", "img_7"]
    images = np.random.default_rng(1).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    uris = thumbnails(ids, [f"img_{i}" for i in range(8)], images)
    section = mistakes_section(runs, uris)
    assert section.count('<figure class="mistake">') == 6 + 3 + 1 + 1  # clip: 6 mistakes + 3 pair examples; siglip: 1 + 1
    assert uris["img_7"] in section and "dancing &rarr; <span class=\"wrong\">calling</span> (0.95)" in section
    assert '<h3 id="mistakes-siglip">siglip</h3>' in section


def test_per_class_f1_table_puts_the_models_side_by_side():
    runs = [_run("clip", ROWS), _run("siglip", [(t, t, 0.9) for t, _, _ in ROWS])]
    table = per_class_f1_table(per_class_table(runs, CLASSES), runs)
    assert "<thead><tr><th>class</th><th>clip</th><th>siglip</th></tr></thead>" in table
    rows = re.findall(r'<tr><td class="text">(\w+)</td>(.*?)</tr>', table)
    assert [name for name, _ in rows] == CLASSES
    cycling = re.findall(r">([\d.]+)<", dict(rows)["cycling"])
    # clip predicts cycling 3 times, once rightly, for the one cycling image: precision 1/3, recall 1, F1 0.5.
    assert cycling == ["0.500", "1.000"] and "<strong>1.000</strong>" in dict(rows)["cycling"]

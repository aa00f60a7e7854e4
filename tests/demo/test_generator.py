"""Tests for the offline HAR-like demo set generator.

They check what the ingestion pipeline relies on: the Kaggle layout, exact counts, byte
determinism, that every advertised problem really is that problem, that the unusual images
have the advertised formats, and that the class is carried by the drawn shape (learnable)
rather than by colours.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, UnidentifiedImageError

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.demo import (
    DemoSpec,
    DemoSummary,
    generate_demo_dataset,
    render_action,
)

# One worker runs the module (pytest --dist loadgroup), so its 720-image fixture is generated once, not per worker.
pytestmark = pytest.mark.xdist_group("demo_generator")

N_CLASSES = len(HAR_CLASSES)
N_BROKEN_ROWS = 7  # truncated, empty, text, missing, unknown label, duplicate row, duplicate image


# --------------------------------------------------------------------------------------
# helpers & fixtures
# --------------------------------------------------------------------------------------


def read_rows(summary: DemoSummary) -> list[tuple[str, str]]:
    with (summary.root / "Training_set.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        assert header == ["filename", "label"]
        return [(r[0], r[1]) for r in reader]


def good_rows(summary: DemoSummary) -> list[tuple[str, str]]:
    """CSV rows that are neither broken files nor broken CSV rows."""
    rows = read_rows(summary)
    return [
        row
        for k, row in enumerate(rows)
        if row[0] not in summary.broken and f"Training_set.csv row {k}" not in summary.broken
    ]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def broken_by(summary: DemoSummary, word: str) -> str:
    """The single ``broken`` key whose description contains ``word``."""
    keys = [k for k, desc in summary.broken.items() if word in desc]
    assert len(keys) == 1, (word, summary.broken)
    return keys[0]


def load_gray(path: Path) -> np.ndarray:
    """Decode like a careful pipeline would: honour EXIF, scale 16-bit, then grayscale."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode == "I;16":
            return np.asarray(im, dtype=np.float64) / 257.0
        return np.asarray(im.convert("RGB").convert("L"), dtype=np.float64)


def shape_features(gray: np.ndarray, size: int = 16, thr: float = 50.0) -> np.ndarray:
    """16x16 grayscale of the figure's bounding box, polarity-free.

    Figures are placed anywhere in the frame at random scales and in random colours, so the
    raw frame is a poor template; ``|pixel - median|`` makes ink bright on any background
    and cropping to the ink's bounding box removes position and scale.
    """
    d = np.abs(gray - np.median(gray))
    ys, xs = np.nonzero(d > thr)
    if ys.size < 5:
        ys, xs = np.nonzero(d >= 0)
    y0, y1 = np.percentile(ys, [1, 99]).astype(int)
    x0, x1 = np.percentile(xs, [1, 99]).astype(int)
    crop = Image.fromarray(d[y0 : y1 + 1, x0 : x1 + 1].astype(np.float32), "F")
    v = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64).ravel()
    return v / (np.linalg.norm(v) + 1e-9)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo_a"), DemoSpec(seed=0))


@pytest.fixture(scope="module")
def demo_clean_seed1(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    # A third of the default size: enough held-out drawings (240) for the learnability check.
    return generate_demo_dataset(tmp_path_factory.mktemp("demo_c"), DemoSpec(seed=1, include_broken=False, images_per_class=16))


# --------------------------------------------------------------------------------------
# layout and counts
# --------------------------------------------------------------------------------------


def test_kaggle_layout_and_csv_columns(demo: DemoSummary) -> None:
    root = demo.root
    assert (root / "Training_set.csv").is_file()
    assert (root / "train").is_dir()
    assert demo.csv_path == root / "Training_set.csv"
    assert demo.image_dir == root / "train"
    first_line = (root / "Training_set.csv").read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "filename,label"
    pattern = re.compile(r"Image_\d+\.(jpg|png)")
    for name, _ in read_rows(demo):
        assert pattern.fullmatch(name), name
    for p in (root / "train").iterdir():
        assert pattern.fullmatch(p.name), p.name


def test_counts(demo: DemoSummary) -> None:
    spec = DemoSpec()
    rows = read_rows(demo)
    assert demo.n_good == spec.images_per_class * N_CLASSES == 720
    assert demo.n_listed == len(rows) == demo.n_good + N_BROKEN_ROWS
    good = good_rows(demo)
    assert len(good) == demo.n_good
    assert len(set(good)) == len(good)
    assert Counter(label for _, label in good) == {c: spec.images_per_class for c in HAR_CLASSES}
    # every good file decodes, has a size in the spec's range and is unique
    hashes = set()
    for name, _ in good:
        path = demo.image_dir / name
        with Image.open(path) as im:
            im.load()
            w, h = ImageOps.exif_transpose(im).size
        assert spec.min_size <= w <= spec.max_size and spec.min_size <= h <= spec.max_size
        hashes.add(sha256(path))
    assert len(hashes) == demo.n_good
    # unusual-but-valid images are among the good ones
    assert set(demo.convertible) <= {name for name, _ in good}


def test_numbering_is_contiguous_and_shuffled(demo: DemoSummary) -> None:
    rows = read_rows(demo)
    names = {name for name, _ in rows} | {p.name for p in demo.image_dir.iterdir()}
    numbers = sorted(int(re.findall(r"\d+", n)[0]) for n in names)
    assert numbers == list(range(1, len(numbers) + 1))  # one file name per number, no gaps
    labels = [label for _, label in good_rows(demo)]
    runs = sum(1 for a, b in zip(labels, labels[1:]) if a != b)
    assert runs > len(labels) // 2  # classes are interleaved, not in blocks
    # apart from the deliberately repeated row, the CSV is ordered by image number like Kaggle's
    csv_numbers = [
        int(re.findall(r"\d+", n)[0])
        for k, (n, _) in enumerate(rows)
        if f"Training_set.csv row {k}" not in demo.broken
    ]
    assert len(csv_numbers) == len(rows) - 1
    assert csv_numbers == sorted(csv_numbers)


def test_without_broken_entries(demo_clean_seed1: DemoSummary) -> None:
    d = demo_clean_seed1
    assert d.broken == {}
    assert d.n_listed == d.n_good == len(read_rows(d))
    assert len(d.convertible) == 6
    assert {name for name, _ in read_rows(d)} == {p.name for p in d.image_dir.iterdir()}


# --------------------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------------------


def test_same_spec_gives_byte_identical_files(tmp_path: Path) -> None:
    # A small spec (2 per class) still writes every broken and convertible kind; each 720-image
    # generation costs seconds.
    spec = DemoSpec(images_per_class=2, seed=0)
    first = generate_demo_dataset(tmp_path / "first", spec)
    again = generate_demo_dataset(tmp_path / "again", spec)
    assert len(first.broken) >= N_BROKEN_ROWS and len(first.convertible) == 6
    assert again.broken == first.broken
    assert again.convertible == first.convertible
    a, b = all_files(first.root), all_files(again.root)
    assert a.keys() == b.keys() and len(a) > 2 * N_CLASSES
    assert all(a[k] == b[k] for k in a)


def test_different_seed_gives_different_images(tmp_path: Path) -> None:
    a = generate_demo_dataset(tmp_path / "a", DemoSpec(images_per_class=2, seed=3))
    b = generate_demo_dataset(tmp_path / "b", DemoSpec(images_per_class=2, seed=4))
    assert all_files(a.root) != all_files(b.root)


def test_rerun_overwrites_only_its_own_files(tmp_path: Path) -> None:
    spec = DemoSpec(images_per_class=2, seed=5)
    root = tmp_path / "root"
    generate_demo_dataset(root, DemoSpec(images_per_class=3, seed=9))  # something stale
    (root / "train" / "stale.jpg").write_bytes(b"old")
    (root / "keep_me.txt").write_text("not ours")
    generate_demo_dataset(root, spec)
    assert not (root / "train" / "stale.jpg").exists()
    assert (root / "keep_me.txt").read_text() == "not ours"
    fresh = generate_demo_dataset(tmp_path / "fresh", spec)
    got = all_files(root)
    del got["keep_me.txt"]
    assert got == all_files(fresh.root)


# --------------------------------------------------------------------------------------
# broken and convertible entries
# --------------------------------------------------------------------------------------


def test_every_broken_entry_is_broken_as_described(demo: DemoSummary) -> None:
    rows = read_rows(demo)
    listed = {name: label for name, label in rows}
    train = demo.image_dir
    assert len(demo.broken) == 8

    name = broken_by(demo, "truncated")
    data = (train / name).read_bytes()
    assert data[:2] == b"\xff\xd8" and len(data) > 100  # starts as a real JPEG
    assert listed[name] in HAR_CLASSES
    with pytest.raises(OSError):
        with Image.open(train / name) as im:
            im.load()

    name = broken_by(demo, "empty")
    assert (train / name).stat().st_size == 0 and name in listed

    name = broken_by(demo, "not an image")
    assert (train / name).stat().st_size > 0 and name in listed
    with pytest.raises(UnidentifiedImageError):
        Image.open(train / name)

    name = broken_by(demo, "missing")
    assert name in listed and not (train / name).exists()

    name = broken_by(demo, "not listed")
    assert name not in listed
    with Image.open(train / name) as im:
        im.load()

    name = broken_by(demo, "not one of the HAR classes")
    assert listed[name] not in HAR_CLASSES
    with Image.open(train / name) as im:
        im.load()

    key = broken_by(demo, "exact repeat")
    k = int(key.rsplit(" ", 1)[1])
    assert key == f"Training_set.csv row {k}"
    assert rows[k] in rows[:k]  # the same (filename, label) appears earlier
    assert rows[k][0] not in demo.broken and listed[rows[k][0]] in HAR_CLASSES

    name = broken_by(demo, "byte-identical")
    twins = [p for p in train.iterdir() if p.name != name and sha256(p) == sha256(train / name)]
    assert len(twins) == 1
    assert twins[0].name in listed and listed[twins[0].name] == listed[name]
    assert twins[0].name not in demo.broken


def test_convertible_images_have_advertised_formats(demo: DemoSummary) -> None:
    listed = dict(read_rows(demo))
    by_mode: dict[str, str] = {}
    for name, desc in demo.convertible.items():
        assert name in listed and listed[name] in HAR_CLASSES
        with Image.open(demo.image_dir / name) as im:
            im.load()
            fmt = im.format
            by_mode.setdefault("EXIF6" if im.getexif().get(0x0112) == 6 else im.mode, name)
            expected_fmt = "PNG" if name.endswith(".png") else "JPEG"
            assert fmt == expected_fmt, (name, fmt)
    assert len(demo.convertible) == 6
    assert set(by_mode) == {"L", "CMYK", "P", "RGBA", "I;16", "EXIF6"}
    for mode in ("P", "RGBA", "I;16"):
        assert by_mode[mode].endswith(".png")
    for mode in ("L", "CMYK", "EXIF6"):
        assert by_mode[mode].endswith(".jpg")

    with Image.open(demo.image_dir / by_mode["RGBA"]) as im:
        alpha = np.asarray(im.getchannel("A"))
    assert alpha.min() == 0 and alpha.max() == 255  # really has transparency

    with Image.open(demo.image_dir / by_mode["I;16"]) as im:
        arr = np.asarray(im)
    assert arr.dtype == np.uint16 and arr.max() > 255  # uses the 16-bit range

    with Image.open(demo.image_dir / by_mode["EXIF6"]) as im:
        assert im.mode == "RGB"
        stored = im.size
        upright = ImageOps.exif_transpose(im)
    assert upright.size == (stored[1], stored[0])


# --------------------------------------------------------------------------------------
# content: the shape carries the class, colours do not
# --------------------------------------------------------------------------------------


def _features(summary: DemoSummary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape, colour, y = [], [], []
    for name, label in good_rows(summary):
        g = load_gray(summary.image_dir / name)
        shape.append(shape_features(g))
        colour.append([g.mean(), np.median(g), g.std()])
        y.append(HAR_CLASSES.index(label))
    return np.array(shape), np.array(colour), np.array(y)


def _nearest_mean_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    means = np.stack([x_train[y_train == c].mean(axis=0) for c in range(N_CLASSES)])
    dist = ((x_test[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
    return float((dist.argmin(axis=1) == y_test).mean())


def test_classes_are_learnable_from_shape_only(demo: DemoSummary, demo_clean_seed1: DemoSummary) -> None:
    s_train, c_train, y_train = _features(demo)
    s_test, c_test, y_test = _features(demo_clean_seed1)
    acc_shape = _nearest_mean_accuracy(s_train, y_train, s_test, y_test)
    # chance is 1/15 ~ 0.067; stick-figure poses must be clearly separable
    assert acc_shape > 0.4, acc_shape
    # global brightness statistics must not give the class away
    z = (c_train.mean(axis=0), c_train.std(axis=0))
    acc_colour = _nearest_mean_accuracy((c_train - z[0]) / z[1], y_train, (c_test - z[0]) / z[1], y_test)
    assert acc_colour < 0.2, acc_colour


# --------------------------------------------------------------------------------------
# render_action and spec validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", HAR_CLASSES)
def test_render_action_is_rgb_sized_and_seeded(label: str) -> None:
    a = render_action(label, 120, 100, np.random.default_rng(42))
    b = render_action(label, 120, 100, np.random.default_rng(42))
    c = render_action(label, 120, 100, np.random.default_rng(43))
    assert a.mode == "RGB" and a.size == (120, 100)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    # something is drawn: the figure's ink stands out from the background
    g = np.asarray(a.convert("L"), dtype=np.float64)
    assert (np.abs(g - np.median(g)) > 50).sum() > 30


def test_render_action_rejects_unknown_label() -> None:
    with pytest.raises(ValueError):
        render_action("juggling", 64, 64, np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs",
    [{"images_per_class": 0}, {"min_size": 200, "max_size": 100}, {"min_size": 4}, {"jpeg_quality": 0}, {"seed": -1}],
)
def test_spec_validation(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        DemoSpec(**kwargs)

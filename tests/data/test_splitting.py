import pytest

from har_kedro.data.errors import DataInputError
from har_kedro.data.splitting import split_counts, stratified_split, validate_fractions

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def test_split_counts_sum_and_minimum():
    assert split_counts(100, FRACTIONS) == {"train": 80, "val": 10, "test": 10}
    assert split_counts(3, FRACTIONS) == {"train": 1, "val": 1, "test": 1}
    assert sum(split_counts(47, FRACTIONS).values()) == 47
    assert split_counts(10, {"train": 1.0, "val": 0.0}) == {"train": 10, "val": 0}


def _data(n_per_class=30):
    ids = [f"Image_{i}.jpg" for i in range(3 * n_per_class)]
    labels = [("a", "b", "c")[i % 3] for i in range(len(ids))]
    return ids, labels


def test_split_is_stratified():
    ids, labels = _data()
    splits = stratified_split(ids, labels, ["a", "b", "c"], FRACTIONS, seed=1)
    for cls in "abc":
        mine = [s for s, lab in zip(splits, labels) if lab == cls]
        assert (mine.count("train"), mine.count("val"), mine.count("test")) == (24, 3, 3)


def test_split_is_deterministic_and_independent_of_input_order():
    ids, labels = _data()
    first = dict(zip(ids, stratified_split(ids, labels, ["a", "b", "c"], FRACTIONS, seed=7)))
    rev_ids, rev_labels = ids[::-1], labels[::-1]
    second = dict(zip(rev_ids, stratified_split(rev_ids, rev_labels, ["a", "b", "c"], FRACTIONS, seed=7)))
    assert first == second
    other = dict(zip(ids, stratified_split(ids, labels, ["a", "b", "c"], FRACTIONS, seed=8)))
    assert other != first


def test_class_smaller_than_number_of_splits_stops_with_the_fix():
    with pytest.raises(DataInputError, match=r"class 'b' has 2 usable image\(s\).*need at least one each"):
        stratified_split(["1", "2", "3", "4", "5"], ["a", "a", "a", "b", "b"], ["a", "b"], FRACTIONS, seed=0)


def test_empty_class_stops():
    with pytest.raises(DataInputError, match="class 'c' has 0"):
        stratified_split(["1", "2", "3"], ["a", "a", "a"], ["a", "c"], {"train": 1.0}, seed=0)


@pytest.mark.parametrize("fractions", [{"train": 0.5, "val": 0.1}, {"train": -0.1, "val": 1.1}, {"val": 1.0}, {}])
def test_bad_fractions(fractions):
    with pytest.raises(DataInputError, match="fraction"):
        validate_fractions(fractions)

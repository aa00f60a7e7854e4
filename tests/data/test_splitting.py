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


# --------------------------------------------------------------------------- near-duplicate groups


def test_with_one_image_per_group_the_split_is_the_ungrouped_one():
    ids, labels = _data()
    assert stratified_split(ids, labels, ["a", "b", "c"], FRACTIONS, seed=5, groups=ids) == stratified_split(ids, labels, ["a", "b", "c"], FRACTIONS, seed=5)


def test_a_group_lands_in_one_split_and_the_split_is_reproducible():
    ids, labels = _data()
    # Groups of 1..4 images of one class: rows i, i+3, i+6 ... share a label.
    groups = [ids[(i // 3 // 4) * 12 + i % 3] for i in range(len(ids))]
    for seed in range(20):
        splits = stratified_split(ids, labels, ["a", "b", "c"], FRACTIONS, seed=seed, groups=groups)
        by_group: dict[str, set[str]] = {}
        for group, split in zip(groups, splits):
            by_group.setdefault(group, set()).add(split)
        assert all(len(s) == 1 for s in by_group.values()), seed
        for cls in "abc":
            assert {s for s, lab in zip(splits, labels) if lab == cls} == {"train", "val", "test"}, (seed, cls)
        shuffled = list(range(len(ids)))[::-1]
        again = stratified_split([ids[i] for i in shuffled], [labels[i] for i in shuffled], ["a", "b", "c"], FRACTIONS, seed=seed, groups=[groups[i] for i in shuffled])
        assert dict(zip([ids[i] for i in shuffled], again)) == dict(zip(ids, splits))


def test_every_split_gets_a_group_even_when_a_big_group_overfills_one():
    ids = [f"x{i}" for i in range(12)]
    groups = ["x0"] * 10 + ["x10", "x11"]  # one group of 10 and two single images
    for seed in range(30):
        splits = stratified_split(ids, ["a"] * 12, ["a"], FRACTIONS, seed=seed, groups=groups)
        assert set(splits) == {"train", "val", "test"} and len(set(splits[:10])) == 1, seed


def test_too_few_groups_for_the_splits_says_so():
    with pytest.raises(DataInputError, match=r"class 'a' has 4 usable image\(s\) in 2 group\(s\) of near-duplicates"):
        stratified_split(["1", "2", "3", "4"], ["a"] * 4, ["a"], FRACTIONS, seed=0, groups=["1", "1", "1", "4"])

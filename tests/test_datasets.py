"""Tests of neurocore.datasets: the bundled digits and train_test_split."""

import numpy as np
import pytest

from neurocore.datasets import load_digits, train_test_split

# Images per digit 0..9 in the UCI optdigits test set (the 1,797 bundled images).
DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_load_digits_shapes_and_dtypes(digits):
    X, y = digits
    assert X.shape == (1797, 64)
    assert X.dtype == np.float32
    assert y.shape == (1797,)
    assert y.dtype == np.int64


def test_load_digits_pixels_are_sixteenths_in_unit_interval(digits):
    X, _ = digits
    assert X.min() == 0.0
    assert X.max() == 1.0
    counts = X * 16
    np.testing.assert_array_equal(counts, np.round(counts))
    # First image of the file (a zero), top pixel row, as stored: 0 0 5 13 9 1 0 0.
    np.testing.assert_array_equal(counts[0, :8], [0, 0, 5, 13, 9, 1, 0, 0])


def test_load_digits_labels(digits):
    _, y = digits
    np.testing.assert_array_equal(np.bincount(y, minlength=10), DIGIT_COUNTS)
    np.testing.assert_array_equal(y[:10], np.arange(10))


def test_load_digits_returns_fresh_arrays():
    X, y = load_digits()
    X[:] = -1
    y[:] = -1
    X2, y2 = load_digits()
    assert X2.min() == 0.0
    assert y2.min() == 0


def test_split_is_a_partition_with_rows_kept_together():
    n = 103
    ids = np.arange(n)
    X = np.stack([ids, ids * 10], axis=1).astype(np.float64)
    y = ids % 4
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=3)
    assert len(X_test) == len(y_test) == 21  # ceil(0.2 * 103)
    assert len(X_train) == len(y_train) == n - 21
    train_ids = X_train[:, 0].astype(int)
    test_ids = X_test[:, 0].astype(int)
    assert np.intersect1d(train_ids, test_ids).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_ids, test_ids])), ids)
    np.testing.assert_array_equal(y_train, train_ids % 4)
    np.testing.assert_array_equal(y_test, test_ids % 4)
    np.testing.assert_array_equal(X_test[:, 1], X_test[:, 0] * 10)


def test_split_is_stratified(digits):
    X, y = digits
    _, _, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)
    assert len(y_test) == 360
    test_counts = np.bincount(y_test, minlength=10)
    expected = np.array(DIGIT_COUNTS) * 360 / 1797  # each class's exact share
    assert np.all(np.abs(test_counts - expected) < 1)
    np.testing.assert_array_equal(test_counts + np.bincount(y_train, minlength=10), DIGIT_COUNTS)


def test_split_stratified_with_a_rare_class():
    y = np.array([0] * 50 + [1] * 49 + [2])
    X = np.arange(100.0)[:, None]
    _, X_test, _, y_test = train_test_split(X, y, test_size=0.2, seed=1)
    assert len(y_test) == 20
    assert np.bincount(y_test, minlength=3)[:2].tolist() == [10, 10]
    np.testing.assert_array_equal(y[X_test[:, 0].astype(int)], y_test)


def test_split_shuffles_classes_together():
    y = np.repeat(np.arange(5), 40)
    X = np.arange(200.0)[:, None]
    _, _, y_train, _ = train_test_split(X, y, test_size=0.25, seed=0)
    # Shuffled: the train labels do not come grouped by class.
    assert np.count_nonzero(np.diff(y_train)) > 20


def test_split_is_deterministic_and_seeded(digits):
    X, y = digits
    first = train_test_split(X, y, seed=7)
    again = train_test_split(X, y, seed=7)
    other = train_test_split(X, y, seed=8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])


def test_split_without_stratification():
    X = np.arange(50.0).reshape(25, 2)
    y = np.linspace(0.0, 1.0, 25)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=5, stratify=False)
    assert X_train.shape == (20, 2)
    assert X_test.shape == (5, 2)
    np.testing.assert_allclose(y_train, X_train[:, 0] / 48.0)
    np.testing.assert_allclose(y_test, X_test[:, 0] / 48.0)


def test_split_accepts_2d_targets_without_stratification():
    X = np.zeros((10, 3))
    y = np.arange(20.0).reshape(10, 2)
    _, _, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=False)
    assert y_train.shape == (7, 2)
    assert y_test.shape == (3, 2)


@pytest.mark.parametrize(
    ("X", "y", "kwargs", "error", "match"),
    [
        (np.zeros((10, 2)), np.zeros(9), {}, ValueError, "same number of rows"),
        (np.zeros((1, 2)), np.zeros(1), {}, ValueError, "at least 2 rows"),
        (np.zeros((10, 2)), np.zeros(10), {"test_size": 0.0}, ValueError, r"\(0, 1\)"),
        (np.zeros((10, 2)), np.zeros(10), {"test_size": 1.0}, ValueError, r"\(0, 1\)"),
        (np.zeros((10, 2)), np.zeros(10), {"test_size": 10}, ValueError, "at least one row"),
        (np.zeros((10, 2)), np.zeros(10), {"test_size": 0}, ValueError, "at least one row"),
        (np.zeros((10, 2)), np.zeros(10), {"test_size": True}, TypeError, "test_size"),
        (np.zeros((10, 2)), np.zeros(10), {"test_size": "0.2"}, TypeError, "test_size"),
        (np.zeros((10, 2)), np.zeros((10, 2)), {}, ValueError, "stratify=False"),
        (np.float64(1.0), np.zeros(1), {}, ValueError, "one row per sample"),
    ],
)
def test_split_rejects_bad_input(X, y, kwargs, error, match):
    with pytest.raises(error, match=match):
        train_test_split(X, y, **kwargs)

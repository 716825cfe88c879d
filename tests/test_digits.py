"""The digits data: seeded stratified splits and flat/image views."""

import numpy as np
import pytest

from tfp_flows import digits


def test_split_sizes_values_and_determinism():
    a = digits.load(seed=0)
    b = digits.load(seed=0)
    assert a.train.shape == (1437, 64) and a.test.shape == (360, 64)
    assert a.validation.shape == (0, 64)
    assert a.train.dtype == np.int32
    assert a.train.min() == 0 and a.train.max() == digits.LEVELS - 1
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    c = digits.load(seed=1)
    assert not np.array_equal(a.test, c.test)


def test_split_is_stratified_and_disjoint():
    s = digits.load(seed=0, validation_fraction=0.15)
    assert len(s.train) + len(s.validation) + len(s.test) == 1797
    for part, labels in ((s.train, s.train_labels), (s.validation, s.validation_labels),
                         (s.test, s.test_labels)):
        assert len(part) == len(labels)
        counts = np.bincount(labels, minlength=10) / len(labels)
        np.testing.assert_allclose(counts, 0.1, atol=0.02)  # ~180 images per digit overall
    rows = [set(map(bytes, p)) for p in (s.train, s.validation, s.test)]
    # Duplicated images exist in the data set, so compare counts of distinct rows only loosely:
    assert len(rows[0] & rows[2]) < 5 and len(rows[1] & rows[2]) < 5


def test_bad_fractions_and_shapes():
    with pytest.raises(ValueError, match="test_fraction"):
        digits.load(test_fraction=0.0)
    with pytest.raises(ValueError, match="validation_fraction"):
        digits.load(validation_fraction=1.5)
    assert digits.to_image(np.zeros([3, 64])).shape == (3, 8, 8)
    with pytest.raises(ValueError, match="last axis 64"):
        digits.to_image(np.zeros([3, 63]))

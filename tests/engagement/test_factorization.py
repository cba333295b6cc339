"""The factorisation's sums matrix, arranged once per fit (engagement/learning/factorization.py
`_OwnerRows`): the same matrix, to the last bit, as scipy's construction from the rows'
coordinates at each step, and so the same factorisation."""

import numpy as np
import pytest
from scipy import sparse

from engagement.learning import factorization
from engagement.learning.config import FeatureConfig
from engagement.learning.factorization import Factorization, _OwnerRows


def _rows(seed: int, count: int, owners: int, others: int):
    rng = np.random.default_rng(seed)
    # Few pairs for many rows: duplicate (owner, other) pairs, up to dozens of a pair, and
    # owners with hundreds of entries, which scipy's sort (an introsort past 16 entries) leaves
    # in an order that is not the rows'; owners with no row at all.
    owner = rng.integers(0, owners, count)
    other = rng.integers(0, others, count)
    return owner, other, rng.normal(0.0, 1.0, count) * 10.0 ** rng.integers(-3, 4, count)


@pytest.mark.parametrize(
    ("count", "owners", "others"),
    [(1, 1, 1), (50, 7, 3), (5_000, 40, 30), (20_000, 300, 40), (3_000, 3_000, 5)],
)
def test_the_sums_are_scipys_construction_to_the_last_bit(count, owners, others):
    owner, other, target = _rows(count, count, owners, others)
    rows = _OwnerRows(owner, other, owners, others)
    for seed in range(3):
        target = np.random.default_rng(seed).permutation(target)
        expected = sparse.csr_matrix((target, (owner, other)), shape=(owners, others))
        found = rows.sums(target)
        assert np.array_equal(found.indptr, expected.indptr)
        assert np.array_equal(found.indices, expected.indices)
        assert found.data.tobytes() == expected.data.tobytes()
    counts = sparse.csr_matrix((np.ones(count), (owner, other)), shape=(owners, others))
    assert (rows.counts != counts).nnz == 0


def test_the_factorisation_is_the_one_built_from_coordinates_at_each_step(monkeypatch):
    owner, other, _ = _rows(5, 9_000, 300, 40)
    score = np.random.default_rng(5).random(9_000) * 4
    config = FeatureConfig()

    def fit():
        return Factorization.fit(owner, other, score, viewers=300, titles=40, config=config)

    arranged = fit()

    def from_coordinates(self, target):
        return sparse.csr_matrix((target, self._coordinates), shape=self.shape)

    built = _OwnerRows.__init__

    def keeping_coordinates(self, owner, other, owners, others):
        built(self, owner, other, owners, others)
        self._coordinates = (owner, other)

    monkeypatch.setattr(_OwnerRows, "__init__", keeping_coordinates)
    monkeypatch.setattr(_OwnerRows, "sums", from_coordinates)
    expected = fit()
    for name in ("viewer_bias", "title_bias", "viewer_vectors", "title_vectors"):
        assert getattr(arranged, name).tobytes() == getattr(expected, name).tobytes(), name
    assert factorization.OWNER_BLOCK > 300  # one block: the count matrix is used whole

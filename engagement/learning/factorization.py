"""A biased matrix factorisation by alternating least squares, vectorised over owners."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from engagement.learning.config import FeatureConfig

# Owners solved per block: bounds the Gram matrices held at once (block × (factors + 1)²).
OWNER_BLOCK = 20_000


class _OwnerRows:
    """One side's rows (owner, other), arranged once for the alternating steps, which all
    regress over the same pairs: the owner × other count matrix, and how a target over the rows
    becomes the owner × other sums matrix. Building that sparse matrix from its coordinates at
    each step (scipy sorts each owner's entries, then adds up duplicate pairs in that order)
    was about half of a factorisation's time; here the order is found once and each step only
    adds the target's values up in it, so the sums, and the factorisation, are the same to the
    last bit (tests/engagement/test_factorization.py)."""

    def __init__(self, owner: np.ndarray, other: np.ndarray, owners: int, others: int):
        shape = (owners, others)
        self.counts = sparse.csr_matrix((np.ones(len(owner)), (owner, other)), shape=shape)
        # The rows in the order scipy's construction puts them: by owner in the rows' order
        # (its conversion from coordinates is a stable counting sort), then each owner's
        # sorted by `other` as scipy sorts them (sort_indices compares the column alone, so
        # the order it leaves equal columns in does not depend on the values carried).
        by_owner = np.argsort(owner, kind="stable")
        indptr = np.r_[0, np.cumsum(np.bincount(owner, minlength=owners))]
        arranged = sparse.csr_matrix((by_owner.astype(float), other[by_owner], indptr), shape=shape)
        arranged.sort_indices()
        self.order = arranged.data.astype(np.intp)
        # Duplicate (owner, other) pairs are neighbours now; each run becomes one entry.
        row_of = np.repeat(np.arange(owners), np.diff(arranged.indptr))
        starts = np.flatnonzero(
            np.r_[True, (np.diff(arranged.indices) != 0) | (np.diff(row_of) != 0)]
        )[: len(owner)]
        self.starts = starts
        self.lengths = np.diff(np.r_[starts, len(owner)])
        self.indices = arranged.indices[starts]
        self.indptr = np.searchsorted(starts, arranged.indptr)
        self.shape = shape

    def sums(self, target: np.ndarray) -> sparse.csr_matrix:
        """The owner × other matrix of the target's sums, as csr_matrix((target, (owner,
        other))) makes it: each run of duplicates added up from its first entry on."""
        arranged = target[self.order]
        summed = arranged[self.starts]
        for extra in range(1, int(self.lengths.max(initial=1))):
            longer = self.lengths > extra
            summed[longer] += arranged[self.starts[longer] + extra]
        return sparse.csr_matrix((summed, self.indices, self.indptr), shape=self.shape)


def _ridge_per_owner(
    rows: _OwnerRows,
    target: np.ndarray,
    design: np.ndarray,
    regularization: np.ndarray,
) -> np.ndarray:
    """For every owner (a viewer, or a title), the ridge solution x of target ≈ design[other]·x
    over its rows, all owners at once: Gram matrices from a sparse owner × other count matrix
    times the others' outer products, then batched solves. Owners without rows get 0."""
    width = design.shape[1]
    owners = rows.shape[0]
    outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), -1)
    moment = np.asarray(rows.sums(target) @ design)
    solution = np.empty((owners, width))
    for start in range(0, owners, OWNER_BLOCK):
        block = slice(start, min(start + OWNER_BLOCK, owners))
        counts = rows.counts if owners <= OWNER_BLOCK else rows.counts[block]
        gram = np.asarray(counts @ outer).reshape(-1, width, width)
        gram += np.diag(regularization)
        solution[block] = np.linalg.solve(gram, moment[block][:, :, None])[:, :, 0]
    return solution


@dataclass
class Factorization:
    """score ≈ mean + viewer bias + title bias + viewer vector · title vector, fitted by
    alternating ridge regressions (each step exact), from a fixed seed."""

    mean: float
    viewer_bias: np.ndarray
    title_bias: np.ndarray
    viewer_vectors: np.ndarray
    title_vectors: np.ndarray

    @classmethod
    def fit(
        cls,
        viewer: np.ndarray,
        title: np.ndarray,
        score: np.ndarray,
        *,
        viewers: int,
        titles: int,
        config: FeatureConfig,
    ) -> Factorization:
        rng = np.random.default_rng(config.seed)
        mean = float(score.mean())
        viewer_part = np.zeros((viewers, config.factors + 1))
        title_part = np.hstack(
            [np.zeros((titles, 1)), rng.normal(0.0, 0.1, (titles, config.factors))]
        )
        residual = score - mean
        # A bias is one number per owner: it gets its own shrinkage.
        regularization = np.full(config.factors + 1, config.factor_regularization)
        regularization[0] = config.bias_regularization
        by_viewer = _OwnerRows(viewer, title, viewers, titles)
        by_title = _OwnerRows(title, viewer, titles, viewers)
        for _ in range(config.factor_iterations):
            # Viewer step: solve [bias, vector] against [1, title vector], title bias removed.
            design = np.hstack([np.ones((titles, 1)), title_part[:, 1:]])
            viewer_part = _ridge_per_owner(
                by_viewer, residual - title_part[title, 0], design, regularization
            )
            design = np.hstack([np.ones((viewers, 1)), viewer_part[:, 1:]])
            title_part = _ridge_per_owner(
                by_title, residual - viewer_part[viewer, 0], design, regularization
            )
        return cls(
            mean=mean,
            viewer_bias=viewer_part[:, 0],
            title_bias=title_part[:, 0],
            viewer_vectors=viewer_part[:, 1:],
            title_vectors=title_part[:, 1:],
        )

    def predict(self, viewer: np.ndarray, title: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the predicted score, the interaction term alone); -1 is an unknown key."""
        known_viewer, known_title = viewer >= 0, title >= 0
        viewer_bias = np.where(known_viewer, self.viewer_bias[viewer], 0.0)
        title_bias = np.where(known_title, self.title_bias[title], 0.0)
        both = known_viewer & known_title
        dot = np.zeros(len(viewer))
        dot[both] = np.einsum(
            "ij,ij->i", self.viewer_vectors[viewer[both]], self.title_vectors[title[both]]
        )
        return self.mean + viewer_bias + title_bias + dot, dot

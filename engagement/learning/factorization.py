"""A biased matrix factorisation by alternating least squares, vectorised over owners."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from engagement.learning.config import FeatureConfig

# Owners solved per block: bounds the Gram matrices held at once (block × (factors + 1)²).
OWNER_BLOCK = 20_000


def _ridge_per_owner(
    owner: np.ndarray,
    other: np.ndarray,
    target: np.ndarray,
    design: np.ndarray,
    owners: int,
    regularization: np.ndarray,
) -> np.ndarray:
    """For every owner (a viewer, or a title), the ridge solution x of target ≈ design[other]·x
    over its rows, all owners at once: Gram matrices from a sparse owner × other count matrix
    times the others' outer products, then batched solves. Owners without rows get 0."""
    width = design.shape[1]
    shape = (owners, len(design))
    counts = sparse.csr_matrix((np.ones(len(owner)), (owner, other)), shape=shape)
    sums = sparse.csr_matrix((target, (owner, other)), shape=shape)
    outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), -1)
    moment = np.asarray(sums @ design)
    solution = np.empty((owners, width))
    for start in range(0, owners, OWNER_BLOCK):
        block = slice(start, min(start + OWNER_BLOCK, owners))
        gram = np.asarray(counts[block] @ outer).reshape(-1, width, width)
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
        for _ in range(config.factor_iterations):
            # Viewer step: solve [bias, vector] against [1, title vector], title bias removed.
            design = np.hstack([np.ones((titles, 1)), title_part[:, 1:]])
            viewer_part = _ridge_per_owner(
                viewer,
                title,
                residual - title_part[title, 0],
                design,
                viewers,
                regularization,
            )
            design = np.hstack([np.ones((viewers, 1)), viewer_part[:, 1:]])
            title_part = _ridge_per_owner(
                title,
                viewer,
                residual - viewer_part[viewer, 0],
                design,
                titles,
                regularization,
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

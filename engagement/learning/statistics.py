"""Collaborative statistics of a set of training rows: smoothed engagement rates of viewers,
titles, titles within audience segments, viewers within genres, and a factorisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from catalog.models import AgeBand, Gender
from engagement.learning.config import FeatureConfig
from engagement.learning.factorization import Factorization

# Audience segments of a title's statistics: one per age band, then one per gender.
AGE_BANDS = tuple(AgeBand.values)
GENDERS = tuple(Gender.values)
SEGMENTS = len(AGE_BANDS) + len(GENDERS)


@dataclass
class CollaborativeStats:
    """Counts and label sums of one set of training rows, and its factorisation."""

    base_rate: float
    viewer_count: np.ndarray
    viewer_positive: np.ndarray
    title_count: np.ndarray
    title_positive: np.ndarray
    # (titles, SEGMENTS): the title among the viewers of each age band and each gender.
    segment_count: np.ndarray
    segment_positive: np.ndarray
    # (viewers, genres)
    genre_count: np.ndarray
    genre_positive: np.ndarray
    factorization: Factorization

    NAMES = (
        "viewer_rate",
        "viewer_log_count",
        "title_rate",
        "title_log_count",
        "title_rate_age_band",
        "title_rate_gender",
        "genre_affinity",
        "factor_score",
        "factor_interaction",
    )

    @classmethod
    def fit(
        cls,
        viewer: np.ndarray,
        title: np.ndarray,
        label: np.ndarray,
        score: np.ndarray,
        *,
        viewer_segments: np.ndarray,
        title_genres: sparse.csr_matrix,
        viewers: int,
        titles: int,
        config: FeatureConfig,
    ) -> CollaborativeStats:
        def tally(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
            return (
                np.bincount(keys, minlength=size).astype(float),
                np.bincount(keys, weights=label, minlength=size),
            )

        viewer_count, viewer_positive = tally(viewer, viewers)
        title_count, title_positive = tally(title, titles)
        segment_keys = title[:, None] * SEGMENTS + viewer_segments[viewer]  # (rows, 2)
        segment_count = np.bincount(segment_keys.ravel(), minlength=titles * SEGMENTS).astype(float)
        segment_positive = np.bincount(
            segment_keys.ravel(), weights=np.repeat(label, 2), minlength=titles * SEGMENTS
        )
        # Genre tallies: the viewer × row indicator times the rows' genre multi-hot.
        indicator = sparse.csr_matrix(
            (np.ones(len(viewer)), (viewer, np.arange(len(viewer)))), shape=(viewers, len(viewer))
        )
        row_genres = title_genres[title]
        genre_count = np.asarray((indicator @ row_genres).todense())
        genre_positive = np.asarray((indicator @ row_genres.multiply(label[:, None])).todense())
        return cls(
            base_rate=float(label.mean()),
            viewer_count=viewer_count,
            viewer_positive=viewer_positive,
            title_count=title_count,
            title_positive=title_positive,
            segment_count=segment_count.reshape(titles, SEGMENTS),
            segment_positive=segment_positive.reshape(titles, SEGMENTS),
            genre_count=genre_count,
            genre_positive=genre_positive,
            factorization=Factorization.fit(
                viewer, title, score, viewers=viewers, titles=titles, config=config
            ),
        )

    def features(
        self,
        viewer: np.ndarray,
        title: np.ndarray,
        *,
        segments: np.ndarray,
        genres: sparse.csr_matrix,
        config: FeatureConfig,
    ) -> np.ndarray:
        """The collaborative columns for (viewer, title) index pairs; -1 is unknown.
        `segments` are the rows' viewers' (age band, gender) segment numbers and `genres`
        the rows' titles' multi-hot, both from the attributes given at transform time."""
        known_viewer, known_title = viewer >= 0, title >= 0
        v, t = np.where(known_viewer, viewer, 0), np.where(known_title, title, 0)
        base = self.base_rate

        viewer_count = np.where(known_viewer, self.viewer_count[v], 0.0)
        viewer_positive = np.where(known_viewer, self.viewer_positive[v], 0.0)
        viewer_rate = (viewer_positive + config.viewer_prior * base) / (
            viewer_count + config.viewer_prior
        )
        title_count = np.where(known_title, self.title_count[t], 0.0)
        title_positive = np.where(known_title, self.title_positive[t], 0.0)
        title_rate = (title_positive + config.title_prior * base) / (
            title_count + config.title_prior
        )

        def segment_rate(column: np.ndarray) -> np.ndarray:
            count = np.where(known_title, self.segment_count[t, column], 0.0)
            positive = np.where(known_title, self.segment_positive[t, column], 0.0)
            return (positive + config.segment_prior * title_rate) / (count + config.segment_prior)

        # The viewer's rate in each of the title's genres, pulled towards the viewer's rate,
        # averaged over the title's genres (the viewer's rate for a title without genres).
        genre_count = np.where(known_viewer[:, None], self.genre_count[v], 0.0)
        genre_positive = np.where(known_viewer[:, None], self.genre_positive[v], 0.0)
        genre_rate = (genre_positive + config.genre_prior * viewer_rate[:, None]) / (
            genre_count + config.genre_prior
        )
        hot = genres.toarray()
        genres_per_title = hot.sum(axis=1)
        affinity = np.where(
            genres_per_title > 0,
            (genre_rate * hot).sum(axis=1) / np.maximum(genres_per_title, 1),
            viewer_rate,
        )
        factor_score, factor_interaction = self.factorization.predict(
            np.where(known_viewer, viewer, -1), np.where(known_title, title, -1)
        )
        return np.column_stack(
            [
                viewer_rate,
                np.log1p(viewer_count),
                title_rate,
                np.log1p(title_count),
                segment_rate(segments[:, 0]),
                segment_rate(segments[:, 1]),
                affinity,
                factor_score,
                factor_interaction,
            ]
        )


@dataclass
class StatisticsFitter:
    """Training rows as index arrays; calling it with a row mask fits their statistics."""

    viewer_index: pd.Index
    viewer: np.ndarray
    title: np.ndarray
    label: np.ndarray
    score: np.ndarray
    segments_of_viewer: np.ndarray
    genres_of_title: sparse.csr_matrix
    row_segments: np.ndarray
    row_genres: sparse.csr_matrix
    config: FeatureConfig

    def __call__(self, mask: np.ndarray) -> CollaborativeStats:
        return CollaborativeStats.fit(
            self.viewer[mask],
            self.title[mask],
            self.label[mask],
            self.score[mask],
            viewer_segments=self.segments_of_viewer,
            title_genres=self.genres_of_title,
            viewers=len(self.segments_of_viewer),
            titles=self.genres_of_title.shape[0],
            config=self.config,
        )

"""The engagement model's features: one fitted transformer, fed plain DataFrames, shared by the
nightly training (rows from the database) and the MovieLens benchmark (rows from files).

Inputs (`engagement.learning.data` builds them from the database):

* ``rows``: one row per interaction, columns ``viewer``, ``title`` (keys), ``label`` (0/1),
  optionally ``score`` (a graded engagement in [0, 1]: the label when absent) and ``session``
  (1 for a viewing session, 0 for a rating: the two sources engage at different rates).
* ``viewers``: indexed by viewer key; ``age_band``, ``gender``, ``region``, ``device``,
  ``is_kids`` — the attributes of `catalog.Viewer`.
* ``titles``: indexed by title key; ``year``, ``maturity_rating``, ``genres`` (a tuple of genre
  slugs) — the attributes of `catalog.Title`.

Three groups of features:

1. The row's source, the viewer's attributes (age band as an ordinal, one-hot gender, region
   and device, kids profile).
2. The title's attributes (genres multi-hot, year, maturity as an ordinal).
3. Collaborative features, from the training rows only: smoothed engagement rates of the
   viewer, of the title, of the title among viewers of the same age band and gender, the
   viewer's affinity for the title's genres, and a biased matrix factorisation of the graded
   score (alternating least squares). The training rows themselves get these features out of
   fold (each fold's from the other folds), so the model never sees a row's own label through
   them, and a tenth of the viewers play newcomers (features as if never seen), so the model
   learns what to trust for new viewers; rows transformed later get them from all training
   rows (`refit_statistics` can add later rows, e.g. the calibration rows, once the model is
   fitted).
4. Running history (`engagement.learning.history`, with FeatureConfig.history): the viewer's
   and the title's engaged share and counts among the events known strictly before the row's
   moment, and the viewer's idle time. Unlike the statistics, they are not frozen at the
   training: rows carry them (``at`` and the tally columns, from `history.with_history` or,
   when serving, from the database), so a viewer who arrived since the training is known by
   what they did since.

Unknown viewers and titles (cold start) get the priors: their collaborative features fall back
to the title's or the population's rates, and their factors are zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from catalog.models import MaturityRating
from engagement.learning import history
from engagement.learning.config import FeatureConfig
from engagement.learning.statistics import (
    AGE_BANDS,
    GENDERS,
    CollaborativeStats,
    StatisticsFitter,
)

# Ordinals and one-hot vocabularies fixed by the catalog (regions and devices are learnt).
MATURITY_RATINGS = tuple(MaturityRating.values)


def _genre_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    return tuple(value)  # type: ignore[arg-type]


@dataclass
class EngagementFeatures:
    """Fitted on training rows only; see the module docstring."""

    config: FeatureConfig = field(default_factory=FeatureConfig)
    viewer_index: pd.Index | None = None
    title_index: pd.Index | None = None
    genres: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    year_fill: float = 1995.0
    stats: CollaborativeStats | None = None
    names: list[str] = field(default_factory=list)
    # The running history's prior rate (the training rows'); None: no history columns (so
    # are artifacts fitted before they existed).
    history_base_rate: float | None = None

    # -- attributes

    def _viewer_attributes(self, viewers: pd.DataFrame, keys: pd.Series) -> np.ndarray:
        frame = viewers.reindex(pd.Index(keys))
        age = frame["age_band"].map({band: n for n, band in enumerate(AGE_BANDS)})
        columns = [age.fillna(2.0).to_numpy(float)]
        for name, values in (
            ("gender", GENDERS),
            ("region", self.regions),
            ("device", self.devices),
        ):
            column = frame[name].fillna("").astype(str).to_numpy()
            columns.extend((column == value).astype(float) for value in values)
        columns.append(frame["is_kids"].eq(True).to_numpy(float))
        return np.column_stack(columns)

    def _segments(self, viewers: pd.DataFrame, keys: pd.Series) -> np.ndarray:
        """Each row's viewer's segment numbers: age band 0–5, gender 6–8 (unknown → middle
        band and unknown gender)."""
        frame = viewers.reindex(pd.Index(keys))
        age = frame["age_band"].map({band: n for n, band in enumerate(AGE_BANDS)}).fillna(2)
        gender = frame["gender"].fillna("").map({g: n for n, g in enumerate(GENDERS)}).fillna(2)
        return np.column_stack([age.to_numpy(int), len(AGE_BANDS) + gender.to_numpy(int)])

    def _title_genres(self, titles: pd.DataFrame, keys: pd.Index | pd.Series) -> sparse.csr_matrix:
        """The genres multi-hot of each key's title (built once per distinct title)."""
        codes, distinct = pd.factorize(pd.Index(keys))
        position = {genre: n for n, genre in enumerate(self.genres)}
        rows, cols = [], []
        for row, value in enumerate(titles.reindex(distinct)["genres"].to_numpy()):
            for genre in _genre_tuple(value):
                if genre in position:
                    rows.append(row)
                    cols.append(position[genre])
        hot = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(distinct), len(self.genres))
        )
        return hot[codes]

    def _title_attributes(self, titles: pd.DataFrame, keys: pd.Series) -> np.ndarray:
        frame = titles.reindex(pd.Index(keys))
        year = pd.to_numeric(frame["year"], errors="coerce").fillna(self.year_fill)
        maturity = frame["maturity_rating"].map({m: n for n, m in enumerate(MATURITY_RATINGS)})
        return np.column_stack([year.to_numpy(float), maturity.fillna(2.0).to_numpy(float)])

    # -- fitting and transforming

    def fit_transform(
        self, rows: pd.DataFrame, viewers: pd.DataFrame, titles: pd.DataFrame
    ) -> np.ndarray:
        """Fit on `rows` and return their features, the collaborative ones out of fold."""
        config = self.config
        self._fit_vocabularies(rows, viewers, titles)
        stats = self._statistics_fitter(rows, viewers, titles)
        viewer = stats.viewer
        self.stats = stats(np.ones(len(rows), dtype=bool))
        collaborative = np.zeros((len(rows), len(CollaborativeStats.NAMES)))
        rng = np.random.default_rng(config.seed)
        fold = rng.integers(0, config.folds, len(rows))
        # A share of the viewers play newcomers: their rows get the features of a viewer the
        # statistics have never seen, so the model learns what to trust for new viewers.
        cold = (rng.random(len(stats.viewer_index)) < config.cold_viewer_share)[viewer]
        if config.time_blocks > 1 and "at" in rows:
            self._fill_as_of(collaborative, stats, rows, fold, cold)
        else:
            self._fill_out_of_fold(collaborative, stats, fold, cold)
        genres = self._title_genres(titles, rows["title"])
        self.history_base_rate = float(rows["label"].mean()) if config.history else None
        return np.hstack(
            [self._attributes(rows, viewers, titles, genres), collaborative, self._history(rows)]
        )

    def _fill_out_of_fold(
        self,
        collaborative: np.ndarray,
        stats: StatisticsFitter,
        fold: np.ndarray,
        cold: np.ndarray,
    ) -> None:
        """Each training row's statistics from the other folds (FeatureConfig.time_blocks 0):
        from the whole window, the row's past and future alike."""
        config, viewer, title = self.config, stats.viewer, stats.title
        for number in range(config.folds):
            inside = (fold == number) & ~cold
            collaborative[inside] = stats(fold != number).features(
                viewer[inside],
                title[inside],
                segments=stats.row_segments[inside],
                genres=stats.row_genres[np.flatnonzero(inside)],
                config=config,
            )
        if cold.any():
            collaborative[cold] = stats(~cold).features(
                np.full(int(cold.sum()), -1),
                title[cold],
                segments=stats.row_segments[cold],
                genres=stats.row_genres[np.flatnonzero(cold)],
                config=config,
            )
        # Counts carry no label: the training rows get those of all training rows, as the
        # rows transformed later do (out of fold they would be a fifth smaller).
        names = list(CollaborativeStats.NAMES)
        assert self.stats is not None
        viewer_count = np.where(cold, 0.0, self.stats.viewer_count[viewer])
        collaborative[:, names.index("viewer_log_count")] = np.log1p(viewer_count)
        collaborative[:, names.index("title_log_count")] = np.log1p(self.stats.title_count[title])

    def _fill_as_of(
        self,
        collaborative: np.ndarray,
        stats: StatisticsFitter,
        rows: pd.DataFrame,
        fold: np.ndarray,
        cold: np.ndarray,
    ) -> None:
        """Each training row's statistics as serving would have read them (FeatureConfig.
        time_blocks k > 1): the rows cut into k blocks by time, a block's rows get the
        statistics of every row before the block (counts included), never of a later one;
        the first block, with nothing before it, gets its own out-of-fold statistics. So a
        title released late in the window has the few ratings it had then, and a viewer's
        rate is their past rate, as at serving time (the out-of-fold statistics give every
        row the whole window's, future included)."""
        config, viewer, title = self.config, stats.viewer, stats.title
        rank = np.empty(len(rows), dtype=int)
        rank[np.argsort(history.epoch_seconds(rows["at"]), kind="stable")] = np.arange(len(rows))
        block = rank * config.time_blocks // len(rows)
        groups = [(block == 0) & (fold == number) for number in range(config.folds)]
        sources = [(block == 0) & (fold != number) for number in range(config.folds)]
        for number in range(1, config.time_blocks):
            groups.append(block == number)
            sources.append(block < number)
        for inside, source in zip(groups, sources, strict=True):
            if not inside.any() or not source.any():
                continue
            # The newcomers' rows: the same statistics, their viewer unknown to them.
            keys = np.where(cold[inside], -1, viewer[inside])
            collaborative[inside] = stats(source).features(
                keys,
                title[inside],
                segments=stats.row_segments[inside],
                genres=stats.row_genres[np.flatnonzero(inside)],
                config=config,
            )

    def _history(self, rows: pd.DataFrame) -> np.ndarray:
        if self.history_base_rate is None:
            return np.zeros((len(rows), 0))
        return history.history_columns(rows, base_rate=self.history_base_rate, config=self.config)

    def refit_statistics(
        self, rows: pd.DataFrame, viewers: pd.DataFrame, titles: pd.DataFrame
    ) -> None:
        """Recompute the collaborative statistics from `rows` (e.g. the training rows and the
        calibration rows after them), keeping the vocabularies, so the fitted model scores
        later rows with everything known before them."""
        stats = self._statistics_fitter(rows, viewers, titles)
        self.stats = stats(np.ones(len(rows), dtype=bool))

    def _fit_vocabularies(
        self, rows: pd.DataFrame, viewers: pd.DataFrame, titles: pd.DataFrame
    ) -> None:
        known_titles = titles.reindex(pd.Index(pd.unique(rows["title"])))
        self.genres = tuple(
            sorted({g for value in known_titles["genres"] for g in _genre_tuple(value)})
        )
        known_viewers = viewers.reindex(pd.Index(pd.unique(rows["viewer"])))
        self.regions = tuple(sorted(known_viewers["region"].dropna().astype(str).unique()))
        self.devices = tuple(sorted(known_viewers["device"].dropna().astype(str).unique()))
        years = pd.to_numeric(known_titles["year"], errors="coerce").dropna()
        self.year_fill = float(years.median()) if len(years) else 1995.0
        self.names = self._attribute_names() + list(CollaborativeStats.NAMES)
        if self.config.history:
            self.names += list(history.NAMES)

    def _statistics_fitter(
        self, rows: pd.DataFrame, viewers: pd.DataFrame, titles: pd.DataFrame
    ) -> StatisticsFitter:
        """Index the viewers and titles of `rows` (the keys the statistics will know)."""
        self.viewer_index = pd.Index(pd.unique(rows["viewer"]))
        self.title_index = pd.Index(pd.unique(rows["title"]))
        viewer = self.viewer_index.get_indexer(rows["viewer"])
        title = self.title_index.get_indexer(rows["title"])
        segments_of_viewer = self._segments(viewers, pd.Series(self.viewer_index))
        genres_of_title = self._title_genres(titles, self.title_index)
        label = rows["label"].to_numpy(float)
        return StatisticsFitter(
            viewer_index=self.viewer_index,
            viewer=viewer,
            title=title,
            label=label,
            score=rows["score"].to_numpy(float) if "score" in rows else label,
            segments_of_viewer=segments_of_viewer,
            genres_of_title=genres_of_title,
            row_segments=segments_of_viewer[viewer],
            row_genres=genres_of_title[title],
            config=self.config,
        )

    def transform(
        self, rows: pd.DataFrame, viewers: pd.DataFrame, titles: pd.DataFrame
    ) -> np.ndarray:
        """Features of (viewer, title) pairs with the statistics of all training rows."""
        if self.stats is None or self.viewer_index is None or self.title_index is None:
            raise RuntimeError("Fit the features before transforming.")
        viewer = self.viewer_index.get_indexer(rows["viewer"])
        title = self.title_index.get_indexer(rows["title"])
        genres = self._title_genres(titles, rows["title"])
        collaborative = self.stats.features(
            viewer,
            title,
            segments=self._segments(viewers, rows["viewer"]),
            genres=genres,
            config=self.config,
        )
        return np.hstack(
            [self._attributes(rows, viewers, titles, genres), collaborative, self._history(rows)]
        )

    def _attributes(
        self,
        rows: pd.DataFrame,
        viewers: pd.DataFrame,
        titles: pd.DataFrame,
        genres: sparse.csr_matrix,
    ) -> np.ndarray:
        from_session = rows["session"] if "session" in rows else pd.Series(0.0, rows.index)
        return np.hstack(
            [
                from_session.to_numpy(float)[:, None],
                self._viewer_attributes(viewers, rows["viewer"]),
                self._title_attributes(titles, rows["title"]),
                genres.toarray(),
            ]
        )

    def _attribute_names(self) -> list[str]:
        return (
            ["from_session", "age_band"]
            + [f"gender={value or 'unknown'}" for value in GENDERS]
            + [f"region={value}" for value in self.regions]
            + [f"device={value}" for value in self.devices]
            + ["is_kids", "year", "maturity"]
            + [f"genre={genre}" for genre in self.genres]
        )

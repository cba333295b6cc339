"""A LightGBM binary model's trees as numpy arrays, to score many creatives in one context.

A decision scores every creative of its CPC candidates in one context (viewer, title, break,
clock). Each node of a tree tests one column, either a creative's own (category, advertiser,
creative, duration) or the context's. A leaf is reached when every test on its path agrees
with the row, so with the two kinds of tests apart:

    leaf reached  ⇔  its context tests agree with the context  and  its creative tests agree
                     with the creative.

The second half depends on the creative alone: computed once per creative and model
(`creative_agreement`), kept by the caller. The first depends on the decision alone: computed
once per decision (`context_agreement`), for every leaf at once. A creative's raw score is
then, per tree, the value of the one leaf where both agree, summed over the trees in their
order from 0.0, as LightGBM's own prediction sums them: the same double, bit for bit (a test
compares them on random rows, NaN and unseen codes included). The booster's row-by-row walk
costs ~100 ns a tree per row; here a decision costs a few vectorised operations whatever its
number of creatives.

The decision rules are LightGBM's (`include/LightGBM/tree.h`): numerical, NaN is 0 unless the
node's missing type is NaN, and a missing value (NaN with type NaN, ±1e-35 with type Zero)
takes the default side, else `value <= threshold` goes left; categorical, NaN goes right with
missing type NaN and is code 0 otherwise, a negative code goes right, a code in the node's set
goes left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ZERO = 1e-35  # LightGBM's kZeroThreshold


@dataclass
class CompiledForest:
    features: np.ndarray  # per internal node: the column it tests
    thresholds: np.ndarray  # numerical nodes' thresholds (NaN for categorical ones)
    categorical: np.ndarray  # bool per internal node
    default_left: np.ndarray
    missing_nan: np.ndarray  # missing type NaN
    missing_zero: np.ndarray  # missing type Zero
    category_sets: np.ndarray  # bool[node, code]: the codes a categorical node sends left
    path_nodes: np.ndarray  # every leaf's path, concatenated: internal node numbers
    path_left: np.ndarray  # ... and whether the path goes left there
    path_leaves: np.ndarray  # ... and the leaf whose path it is
    leaf_values: np.ndarray
    leaf_trees: np.ndarray  # leaves are grouped by tree, trees in the booster's order
    sigmoid: float

    def __post_init__(self) -> None:
        self.trees = int(self.leaf_trees[-1]) + 1 if len(self.leaf_trees) else 0
        # Paths are stored leaf after leaf: each leaf's tests are one run of the arrays (a
        # root leaf, a tree of one leaf, has none and is always reached).
        self.step_index = 2 * self.path_nodes + (~self.path_left).astype(np.intp)
        self.pathful = np.unique(self.path_leaves)
        self.path_starts = np.searchsorted(self.path_leaves, self.pathful)
        # Each tree's leaves as bits of one uint64 (`masks`): at most 64 leaves a tree.
        self.tree_starts = np.searchsorted(self.leaf_trees, np.arange(self.trees))
        self.leaf_bits = np.arange(len(self.leaf_trees)) - self.tree_starts[self.leaf_trees]
        if len(self.leaf_bits) and self.leaf_bits.max() >= 64:
            raise ValueError("A tree has more than 64 leaves.")
        self.leaf_masks = np.left_shift(np.uint64(1), self.leaf_bits.astype(np.uint64))
        value_table = np.zeros((self.trees, 64))
        value_table[self.leaf_trees, self.leaf_bits] = self.leaf_values
        self.value_table_flat = value_table.ravel()
        self.tree_offsets = (64 * np.arange(self.trees))[:, None]

    @classmethod
    def from_booster(cls, booster) -> CompiledForest:
        dump = booster.dump_model()
        objective = str(dump.get("objective", ""))
        if (
            dump.get("num_tree_per_iteration", 1) != 1
            or dump.get("average_output")
            or not objective.startswith("binary")
        ):
            raise ValueError("Only a binary model that sums its trees is compiled.")
        sigmoid = 1.0
        for part in objective.split():
            if part.startswith("sigmoid:"):
                sigmoid = float(part.split(":", 1)[1])
        nodes: list[dict] = []
        leaves: list[tuple[float, int, list[tuple[int, bool]]]] = []

        def walk(node: dict, tree: int, path: list[tuple[int, bool]]) -> None:
            if "split_feature" not in node:
                leaves.append((float(node.get("leaf_value", 0.0)), tree, path))
                return
            number = len(nodes)
            nodes.append(node)
            walk(node["left_child"], tree, [*path, (number, True)])
            walk(node["right_child"], tree, [*path, (number, False)])

        for tree, info in enumerate(dump["tree_info"][: booster.num_trees()]):
            walk(info["tree_structure"], tree, [])
        is_categorical = [node["decision_type"] == "==" for node in nodes]
        codes = [
            [int(code) for code in str(node["threshold"]).split("||")] if categorical else []
            for node, categorical in zip(nodes, is_categorical, strict=True)
        ]
        width = max((max(node_codes) for node_codes in codes if node_codes), default=0) + 1
        category_sets = np.zeros((len(nodes), width), dtype=bool)
        for number, node_codes in enumerate(codes):
            category_sets[number, node_codes] = True
        return cls(
            features=np.array([node["split_feature"] for node in nodes], dtype=np.intp),
            thresholds=np.array(
                [
                    np.nan if categorical else float(node["threshold"])
                    for node, categorical in zip(nodes, is_categorical, strict=True)
                ]
            ),
            categorical=np.array(is_categorical, dtype=bool),
            default_left=np.array([bool(node.get("default_left")) for node in nodes]),
            missing_nan=np.array([node.get("missing_type") == "NaN" for node in nodes]),
            missing_zero=np.array([node.get("missing_type") == "Zero" for node in nodes]),
            category_sets=category_sets,
            path_nodes=np.array([n for _, _, path in leaves for n, _ in path], dtype=np.intp),
            path_left=np.array([left for _, _, path in leaves for _, left in path], dtype=bool),
            path_leaves=np.array(
                [number for number, (_, _, path) in enumerate(leaves) for _ in path],
                dtype=np.intp,
            ),
            leaf_values=np.array([value for value, _, _ in leaves]),
            leaf_trees=np.array([tree for _, tree, _ in leaves], dtype=np.intp),
            sigmoid=sigmoid,
        )

    def goes_left(self, rows: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """bool[row, node]: whether each row goes left at each of `nodes`."""
        values = rows[:, self.features[nodes]]
        missing = np.isnan(values)
        as_zero = missing & ~self.missing_nan[nodes]  # NaN read as 0
        values = np.where(as_zero, 0.0, values)
        missing &= self.missing_nan[nodes]
        numeric_missing = missing | (self.missing_zero[nodes] & (np.abs(values) <= ZERO))
        with np.errstate(invalid="ignore"):
            left = np.where(
                numeric_missing, self.default_left[nodes], values <= self.thresholds[nodes]
            )
        categorical = self.categorical[nodes]
        if categorical.any():
            width = self.category_sets.shape[1]
            # NaN goes right whatever the missing type (LightGBM 4); a code is truncated to an
            # integer, and a negative one goes right.
            valid = ~np.isnan(rows[:, self.features[nodes]]) & (values > -1) & (values < width)
            codes = np.where(valid, values, 0).astype(np.intp)
            in_set = self.category_sets[nodes[None, :], codes] & valid
            left = np.where(categorical, in_set, left)
        return left

    def agreement(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """bool[row, leaf]: whether every test on the leaf's path of a node testing one of
        `columns` (bool per column) agrees with the row; tests of other columns are ignored
        (they agree)."""
        tested = np.flatnonzero(columns[self.features])
        agree = np.ones((len(rows), 2 * len(self.features)), dtype=bool)
        if len(tested):
            left = self.goes_left(rows, tested)
            agree[:, 2 * tested] = left
            agree[:, 2 * tested + 1] = ~left
        reached = np.ones((len(rows), len(self.leaf_values)), dtype=bool)
        if len(self.path_nodes):
            steps = agree[:, self.step_index]
            reached[:, self.pathful] = np.logical_and.reduceat(steps, self.path_starts, axis=1)
        return reached

    def masks(self, agreement: np.ndarray) -> np.ndarray:
        """uint64[row, tree]: bool[row, leaf] as one word a tree, bit i its i-th leaf of the
        tree."""
        bits = np.where(agreement, self.leaf_masks, np.uint64(0))
        return np.bitwise_or.reduceat(bits, self.tree_starts, axis=1)

    def raw_from_masks(self, reached: np.ndarray) -> np.ndarray:
        """The raw score of each column of uint64[tree, row] (one bit, the leaf reached, per
        tree): the leaves' values summed tree by tree from 0.0, as LightGBM sums them."""
        if not self.trees:
            return np.zeros(reached.shape[1])
        leaf = np.bitwise_count(reached - np.uint64(1))  # the set bit's number
        values = np.ascontiguousarray(self.value_table_flat.take(leaf + self.tree_offsets))
        # A sum over the outer axis of a C-ordered array adds its rows one after the other
        # (numpy sums pairwise only along the contiguous axis): tree by tree, as the booster.
        return values.sum(axis=0)

    def probability(self, raw: np.ndarray) -> np.ndarray:
        """The booster's output for a raw score: its binary objective's sigmoid, with the C
        library's exp as LightGBM's (numpy's own exp may differ in the last bit)."""
        sigmoid = self.sigmoid
        return np.array([1.0 / (1.0 + math.exp(-sigmoid * value)) for value in raw.tolist()])

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The raw score of whole rows."""
        masks = self.masks(self.agreement(rows, np.ones(rows.shape[1], dtype=bool)))
        return self.raw_from_masks(np.ascontiguousarray(masks.T))

"""A fitted scikit-learn forest as plain arrays: saved as npz, loaded without pickle, predicted in numpy.

Fold outputs must never be unpickled, so the trees' node arrays (children, split feature and
threshold, leaf values) are what goes to disk. Prediction walks every tree level by level over
all samples at once and reproduces `predict_proba` / `predict` of the fitted forest (inputs are
cast to float32 first, as scikit-learn's trees do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np

from ..jsonl import atomic_write

ForestKind = Literal["classifier", "regressor"]
_LEAF = -1


@dataclass
class TreeEnsemble:
    kind: ForestKind
    roots: np.ndarray  # (n_trees,) index of each tree's root in the node arrays
    left: np.ndarray  # (n_nodes,) global index of the left child, -1 at leaves
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray  # (n_nodes, n_outputs): class probabilities or the regression value
    classes: np.ndarray  # class labels (classifier) or an empty array

    @classmethod
    def from_sklearn(cls, forest) -> TreeEnsemble:
        kind: ForestKind = "classifier" if hasattr(forest, "classes_") else "regressor"
        roots, left, right, feature, threshold, value = [], [], [], [], [], []
        offset = 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            roots.append(offset)
            left.append(np.where(tree.children_left == _LEAF, _LEAF, tree.children_left + offset))
            right.append(np.where(tree.children_right == _LEAF, _LEAF, tree.children_right + offset))
            feature.append(tree.feature)
            threshold.append(tree.threshold)
            leaf_values = tree.value[:, 0, :].astype(np.float64)
            if kind == "classifier":
                totals = leaf_values.sum(axis=1, keepdims=True)
                leaf_values = leaf_values / np.where(totals == 0, 1.0, totals)
            value.append(leaf_values)
            offset += tree.node_count
        return cls(
            kind=kind,
            roots=np.array(roots, dtype=np.int64),
            left=np.concatenate(left).astype(np.int64),
            right=np.concatenate(right).astype(np.int64),
            feature=np.concatenate(feature).astype(np.int64),
            threshold=np.concatenate(threshold).astype(np.float64),
            value=np.concatenate(value),
            classes=np.asarray(forest.classes_) if kind == "classifier" else np.array([], dtype=np.int64),
        )

    def save(self, path: Path) -> None:
        with atomic_write(path, "wb") as handle:
            np.savez_compressed(
                handle,
                kind=np.array(self.kind),
                roots=self.roots,
                left=self.left,
                right=self.right,
                feature=self.feature,
                threshold=self.threshold,
                value=self.value,
                classes=self.classes,
            )

    @classmethod
    def load(cls, path: Path) -> TreeEnsemble:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                kind=cast(ForestKind, str(data["kind"])),  # written by `save` from a ForestKind
                roots=data["roots"],
                left=data["left"],
                right=data["right"],
                feature=data["feature"],
                threshold=data["threshold"],
                value=data["value"],
                classes=data["classes"],
            )

    def leaves(self, features: np.ndarray) -> np.ndarray:
        """(n_trees, n_samples) index of the leaf each sample reaches in each tree."""
        x = np.asarray(features, dtype=np.float32)
        n_samples = x.shape[0]
        nodes = np.repeat(self.roots[:, None], n_samples, axis=1)
        samples = np.broadcast_to(np.arange(n_samples), nodes.shape)
        while True:
            children = self.left[nodes]
            active = children != _LEAF
            if not active.any():
                return nodes
            current = nodes[active]
            go_left = x[samples[active], self.feature[current]] <= self.threshold[current]
            nodes[active] = np.where(go_left, children[active], self.right[current])

    def predict_values(self, features: np.ndarray) -> np.ndarray:
        """(n_samples, n_outputs): mean over trees of the leaf values (probabilities or values)."""
        leaves = self.leaves(features)
        total = np.zeros((leaves.shape[1], self.value.shape[1]))
        for tree_leaves in leaves:
            total += self.value[tree_leaves]
        return total / len(self.roots)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if self.kind != "classifier":
            raise TypeError("predict_proba needs a classification forest")
        return self.predict_values(features)

    def predict(self, features: np.ndarray) -> np.ndarray:
        values = self.predict_values(features)
        if self.kind == "classifier":
            return self.classes[values.argmax(axis=1)]
        return values[:, 0]

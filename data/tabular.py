"""Tabular regression: California housing, energy efficiency, and sklearn's bundled diabetes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from data import energy_file, housing_file, resolve_root
from data.tensors import Split, TensorDataModule


def _splits(x: np.ndarray, y: np.ndarray, val: float | None) -> tuple[Split, Split, Split]:
    """Reference split: test 20 %, then ``val`` of the rest (random_state 42); scale on train."""
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=42)
    if val is None:
        x_va, y_va = x_te, y_te
    else:
        x_tr, x_va, y_tr, y_va = train_test_split(x_tr, y_tr, test_size=val, random_state=42)
    scaler = StandardScaler().fit(x_tr)

    def pair(a: np.ndarray, b: np.ndarray) -> Split:
        xs = torch.tensor(scaler.transform(a), dtype=torch.float32)
        return xs, torch.tensor(b, dtype=torch.float32).reshape(len(b), -1)

    return pair(x_tr, y_tr), pair(x_va, y_va), pair(x_te, y_te)


class HousingDataModule(TensorDataModule):
    """California housing with scikit-learn's 8 features; target = median value / 1e5.

    ``val_fraction`` of the training rows validate (0.2: the split 64/16/20); None keeps all
    80 % for training and validates on the test split, as the reference did at arXiv v1.
    """

    def __init__(self, *args: Any, val_fraction: float | None = 0.2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.val_fraction = val_fraction

    def load(self) -> tuple[Split, Split, Split]:
        path = housing_file(resolve_root(self.root))
        raw = np.loadtxt(path, delimiter=",", skiprows=0 if "CaliforniaHousing" in str(path) else 1)
        lon, lat, age, rooms, beds, pop, households, income, value = raw.T
        x = np.stack(
            [income, age, rooms / households, beds / households, pop, pop / households, lat, lon], 1
        )
        return _splits(x, value / 1e5, val=self.val_fraction)


class EnergyDataModule(TensorDataModule):
    """Energy efficiency (UCI): 8 features, two targets (heating and cooling load) per row."""

    def load(self) -> tuple[Split, Split, Split]:
        path = energy_file(resolve_root(self.root))
        raw = np.loadtxt(path, delimiter=",", skiprows=1)
        return _splits(raw[:, :8], raw[:, 8:10], val=None)


class DiabetesDataModule(TensorDataModule):
    """scikit-learn's bundled diabetes data (442 rows): the offline embedded default."""

    def load(self) -> tuple[Split, Split, Split]:
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True)
        return _splits(x, (y - y.mean()) / y.std(), val=0.2)

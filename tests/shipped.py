"""The shipped models of one artifacts folder, for the accuracy-floor tests: loaded once
per test session, each model's test accuracy computed once (a floor test and a manifest
test both need it)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from mnist_core.artifacts.files import ArtifactError, load_models


class Shipped:
    def __init__(self, directory: Path, names: list[str] | None = None, what: str = "artifacts"):
        self.directory, self.names, self.what = directory, names, what
        self._accuracy: dict[str, float] = {}

    @functools.cached_property
    def _loaded(self) -> dict | str:
        try:
            return load_models(self.directory, self.names)
        except ArtifactError as exc:
            return str(exc)

    def models(self) -> dict:
        """Every model; a missing or damaged artifact FAILS the test, saying which."""
        if isinstance(self._loaded, str):
            pytest.fail(f"the shipped {self.what} in {self.directory} are missing or damaged: "
                        f"{self._loaded}", pytrace=False)
        return self._loaded

    def accuracy(self, name: str, test: tuple[np.ndarray, np.ndarray]) -> float:
        """Model ``name``'s accuracy on ``test``: ``((10000, 28, 28) float32 in [0, 1],
        (10000,) int64 labels)``."""
        if name not in self._accuracy:
            x, y = test
            probs = self.models()[name].predict_proba(x)
            assert probs.shape == (len(y), 10)
            self._accuracy[name] = float((probs.argmax(axis=1) == y).mean())
        return self._accuracy[name]

"""Read digits from images with loaded models: what ``predict`` and the app both use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .preprocess import DEFAULT, PreprocessConfig, Stages, preprocess, segment
from .views import ViewConfig, predict_views


@dataclass
class Reading:
    """One digit: its preprocessing stages and each model's ``(10,)`` probabilities."""

    stages: Stages
    probs: dict[str, np.ndarray]

    def digit(self, model: str) -> int:
        return int(np.argmax(self.probs[model]))

    def confidence(self, model: str) -> float:
        return float(np.max(self.probs[model]))


def predict_all(models: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    """``(N, 28, 28) float32 [0, 1]`` -> model name -> ``(N, 10)`` probabilities."""
    x = np.asarray(x, np.float32)
    return {name: np.asarray(m.predict_proba(x), np.float32) for name, m in models.items()}


def read_digit(image: np.ndarray, models: dict, config: PreprocessConfig = DEFAULT,
               view_cfg: ViewConfig | None = None) -> Reading:
    """All ink in ``image`` as one digit, each model's probabilities averaged over the
    digit's views (:mod:`mnist_core.views`; ``view_cfg`` None: each model's own).
    Raises ``NoDigitError`` for a blank image."""
    stages = preprocess(image, config)
    probs = predict_views(models, stages.final[None], view_cfg)
    return Reading(stages, {k: v[0] for k, v in probs.items()})


def read_digits(image: np.ndarray, models: dict, config: PreprocessConfig = DEFAULT,
                view_cfg: ViewConfig | None = None) -> list[Reading]:
    """Every digit in ``image``, left to right; all digits' views go through each model in
    one batch. Where strokes may be one wide digit or two touching ones, the reading the
    models are surer of, on average, is kept (:func:`~mnist_core.preprocess.segment`)."""
    parts = segment(image, config, judge=lambda x: np.mean(list(predict_all(models, x).values()), 0))
    probs = predict_views(models, np.stack([s.final for s in parts]), view_cfg)
    return [Reading(s, {k: v[i] for k, v in probs.items()}) for i, s in enumerate(parts)]


def agreement(reading: Reading) -> tuple[bool, dict[int, list[str]]]:
    """Whether all models name the same digit, and which models voted for which digit."""
    votes: dict[int, list[str]] = {}
    for name in reading.probs:
        votes.setdefault(reading.digit(name), []).append(name)
    return len(votes) <= 1, votes

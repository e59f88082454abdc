"""Read digits from images with loaded models: what ``predict`` and the app both use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import novelty
from ..insight.calibration import untempered
from ..preprocess import DEFAULT, PreprocessConfig, Stages, preprocess, segment
from ..models.views import ViewConfig, predict_views


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


def read_input(x: np.ndarray, models: dict, view_cfg: ViewConfig | None = None
               ) -> dict[str, np.ndarray]:
    """How the app reads a digit that is already a model input: every page's bars come
    from here, so a digit gets the same ones wherever it is shown.

    ``x``: ``(28, 28)`` or ``(N, 28, 28)`` float32 in [0, 1], white on black, as
    preprocessing makes them (an MNIST test digit, a stress-tested one, a drawing's
    ``stages.final``). Returns model name -> ``(10,)`` or ``(N, 10)`` probabilities, each
    model's averaged over the digit's test-time views (:func:`~mnist_core.models.views.predict_views`;
    ``view_cfg`` None: each model's own).
    """
    x = np.asarray(x, np.float32)
    if x.shape[-2:] != (28, 28) or x.ndim not in (2, 3):
        raise ValueError(f"expected (28, 28) or (N, 28, 28) model input, got {x.shape}")
    if x.ndim == 2:
        return {k: v[0] for k, v in predict_views(models, x[None], view_cfg).items()}
    return predict_views(models, x, view_cfg)


def read_digit(image: np.ndarray, models: dict, config: PreprocessConfig = DEFAULT,
               view_cfg: ViewConfig | None = None, *, canvas: bool = False) -> Reading:
    """All ink in ``image`` as one digit, read by :func:`read_input`. ``canvas``: an RGBA
    drawing from the app's canvas, whose alpha is the ink (see
    :func:`~mnist_core.preprocess.preprocess`). Raises ``NoDigitError`` for a blank image."""
    stages = preprocess(image, config, canvas=canvas)
    return Reading(stages, read_input(stages.final, models, view_cfg))


def read_digits(image: np.ndarray, models: dict, config: PreprocessConfig = DEFAULT,
                view_cfg: ViewConfig | None = None, *, canvas: bool = False) -> list[Reading]:
    """Every digit in ``image``, left to right, read by :func:`read_input` (all digits' views
    go through each model in one batch). Where strokes may be one wide digit or two
    touching ones, the reading the models are surer of, on average, is kept
    (:func:`~mnist_core.preprocess.segment`). An image whose ink, read as one digit, is a
    solid patch (:func:`mnist_core.reading.novelty.ink_reasons`: noise, a blot) is not split: one
    reading of all of it. ``canvas`` as for :func:`read_digit`."""
    parts, _ = _parts(image, models, config, canvas)
    return _read(parts, models, view_cfg)


def read_row(image: np.ndarray, models: dict, config: PreprocessConfig = DEFAULT,
             view_cfg: ViewConfig | None = None, *, canvas: bool = False
             ) -> tuple[Reading, list[Reading]]:
    """``(whole, digits)``: :func:`read_digits`'s ``digits``, and ``whole``, all the ink read
    as one digit (:func:`read_digit`): the one digit found, or a row of digits preprocessed
    once more as one, in the same batch through the models."""
    parts, whole = _parts(image, models, config, canvas)
    if whole is parts[0]:
        readings = _read(parts, models, view_cfg)
        return readings[0], readings
    readings = _read([*parts, whole], models, view_cfg)
    return readings[-1], readings[:-1]


def _parts(image: np.ndarray, models: dict, config: PreprocessConfig, canvas: bool
           ) -> tuple[list[Stages], Stages]:
    """The digits' stages, left to right, and the stages of all the ink as one digit (the
    first part itself when there is one)."""
    # The judge reads with each network's own softmax: the split margin was chosen on that
    # scale, and a fitted temperature (below 1) sharpens every reading towards 1, which
    # hid two touching digits behind one confident wide one (rows split right 89.5 -> 84%).
    raw = {name: untempered(m) for name, m in models.items()}

    def judge(x: np.ndarray) -> np.ndarray:  # the models' mean, to settle doubtful widths
        return np.mean(list(predict_all(raw, x).values()), 0)

    parts = segment(image, config, judge, canvas=canvas)
    if len(parts) == 1:
        return parts, parts[0]
    # A photo of noise (or a blot) is one wide mass of "ink" that the splitter cuts into
    # tall slices, each a plausible "1" or "8" of stroke width: none looked like a
    # non-digit on its own. Read as one digit it is a solid patch (novelty's ink and blot
    # signals), and a row of real digits fitted into one box never is, so such an image
    # is read whole, and the panel says it does not look like a digit.
    whole = preprocess(image, config, canvas=canvas)
    return ([whole] if novelty.ink_reasons(whole.final)[2] else parts), whole


def _read(stages: list[Stages], models: dict, view_cfg: ViewConfig | None) -> list[Reading]:
    probs = read_input(np.stack([s.final for s in stages]), models, view_cfg)
    return [Reading(s, {k: v[i] for k, v in probs.items()}) for i, s in enumerate(stages)]


def agreement(reading: Reading) -> tuple[bool, dict[int, list[str]]]:
    """Whether all models name the same digit, and which models voted for which digit."""
    votes: dict[int, list[str]] = {}
    for name in reading.probs:
        votes.setdefault(reading.digit(name), []).append(name)
    return len(votes) <= 1, votes

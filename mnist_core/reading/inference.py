"""Read digits from images with loaded models: what ``predict`` and the app both use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import novelty
from ..insight.calibration import untempered
from ..preprocess import DEFAULT, PreprocessConfig, Stages, preprocess, segment
from ..preprocess.garment import DEFAULT_GARMENT, GarmentConfig, garment_input
from ..models.views import NamedViews, ViewConfig, model_config, predict_views, view_sets


@dataclass
class Reading:
    """One digit, read whole: what the pages show and ``predict`` reports.

    ``image`` is the ``(28, 28) float32 in [0, 1]`` model input (white on black);
    ``stages`` how preprocessing made it (None for an input read as it is: a test digit, a
    stress-tested or attacked one); ``probs`` model name -> ``(10,)`` float32
    probabilities, each averaged over that model's ``views`` (model name -> ``[(caption,
    (28, 28) float32), ...]``, the input itself first: the images the model saw, as
    :mod:`mnist_core.models.views` makes them; models with the same views share the list);
    ``verdict`` the not-a-digit check (:func:`mnist_core.reading.novelty.check`): ``flagged`` and
    its ``reasons``.
    """

    image: np.ndarray
    probs: dict[str, np.ndarray]
    views: dict[str, NamedViews] = field(default_factory=dict)
    verdict: novelty.Verdict | None = None
    stages: Stages | None = None

    def digit(self, model: str) -> int:
        return int(np.argmax(self.probs[model]))

    def confidence(self, model: str) -> float:
        return float(np.max(self.probs[model]))

    @property
    def flagged(self) -> bool:
        """Whether it does not look like a digit (the verdict's reasons are not empty)."""
        return self.verdict is not None and self.verdict.flagged


def predict_all(models: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    """``(N, 28, 28) float32 [0, 1]`` -> model name -> ``(N, 10)`` probabilities."""
    x = np.asarray(x, np.float32)
    return {name: np.asarray(m.predict_proba(x), np.float32) for name, m in models.items()}


def _inputs(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.shape[-2:] != (28, 28) or x.ndim not in (2, 3):
        raise ValueError(f"expected (28, 28) or (N, 28, 28) model input, got {x.shape}")
    return x


def read_input(x: np.ndarray, models: dict, view_cfg: ViewConfig | None = None
               ) -> dict[str, np.ndarray]:
    """How the app reads a digit that is already a model input: every page's bars come
    from here, so a digit gets the same ones wherever it is shown.

    ``x``: ``(28, 28)`` or ``(N, 28, 28)`` float32 in [0, 1], white on black, as
    preprocessing makes them (an MNIST test digit, a stress-tested one, a drawing's
    ``stages.final``). Returns model name -> ``(10,)`` or ``(N, 10)`` probabilities, each
    model's averaged over the digit's test-time views
    (:func:`~mnist_core.models.views.predict_views`;
    ``view_cfg`` None: each model's own). Only the probabilities: :func:`read` also gives
    the views and the not-a-digit verdict.
    """
    x = _inputs(x)
    if x.ndim == 2:
        return {k: v[0] for k, v in predict_views(models, x[None], view_cfg).items()}
    return predict_views(models, x, view_cfg)


# ---------------------------------------------------------------------------------------
# Whole readings: views, probabilities and the not-a-digit verdict
# ---------------------------------------------------------------------------------------

FarRefs = Mapping[str, novelty.FarReference]


def read(x: np.ndarray, models: dict, refs: FarRefs | None = None,
         view_cfg: ViewConfig | None = None, *, judge_image: bool = True,
         novelty_cfg: novelty.NoveltyConfig = novelty.DEFAULT) -> Reading | list[Reading]:
    """Model inputs read whole: each one's views, every model's probabilities (as
    :func:`read_input` gives them) and the not-a-digit verdict.

    ``x``: ``(28, 28)`` -> one :class:`Reading`; ``(N, 28, 28)`` -> a list of ``N``
    (float32 in [0, 1], white on black). ``refs``: the shipped models' maps
    (:func:`mnist_core.reading.novelty.references`) for the verdict's far signal; None or empty:
    judged on ink, stroke width and the models' doubt only. ``judge_image`` False: only
    the models' doubt is judged, for inputs made from a digit on purpose (Stress test's
    noise and thickening, an adversarial change), which are digits by construction and
    whose extra ink is the point. All inputs' views go through each model in one batch,
    which also gives each voting model's features.
    """
    x = _inputs(x)
    if x.ndim == 2:
        return _whole(x[None], models, refs, view_cfg, novelty_cfg, judge_image=judge_image)[0]
    return _whole(x, models, refs, view_cfg, novelty_cfg, judge_image=judge_image)


def _whole(x: np.ndarray, models: dict, refs: FarRefs | None, view_cfg: ViewConfig | None,
           cfg: novelty.NoveltyConfig, stages: list[Stages] | None = None, *,
           judge_image: bool = True) -> list[Reading]:
    """The one reading path: views made once (shown and averaged over), one forward pass
    per model giving the probabilities and, for each model voting on the far signal (a
    map of its own in ``refs``), its features; then each input's verdict."""
    configs = {name: model_config(m, view_cfg) for name, m in models.items()}
    named = view_sets(x, configs.values())
    voters = {name for name, m in models.items()
              if refs and judge_image and name in refs and refs[name].matches(m)}
    features: dict[str, np.ndarray | None] = dict.fromkeys(voters)
    probs = predict_views(models, x, view_cfg, named=named, features=features)
    far = {name: refs[name].ratios(f) for name, f in features.items()}
    out = []
    for i, image in enumerate(x):
        p = {k: v[i] for k, v in probs.items()}
        verdict = novelty.check(p, image if judge_image else None, cfg,
                                far={k: float(v[i]) for k, v in far.items()})
        out.append(Reading(image, p, {k: named[c][i] for k, c in configs.items()}, verdict,
                           None if stages is None else stages[i]))
    return out


def read_digit(image: np.ndarray, models: dict, config: PreprocessConfig = DEFAULT,
               view_cfg: ViewConfig | None = None, *, canvas: bool = False,
               refs: FarRefs | None = None) -> Reading:
    """All ink in ``image`` as one digit, preprocessed and then read by :func:`read`.
    ``canvas``: an RGBA drawing from the app's canvas, whose alpha is the ink (see
    :func:`~mnist_core.preprocess.preprocess`); ``refs`` as for :func:`read`. Raises
    ``NoDigitError`` for a blank image."""
    stages = preprocess(image, config, canvas=canvas)
    return _read([stages], models, view_cfg, refs)[0]


def read_garment(image: np.ndarray, models: dict,
                 config: GarmentConfig = DEFAULT_GARMENT) -> Reading:
    """A photo of one garment on a plain background, made into a Fashion-MNIST image
    (:func:`~mnist_core.preprocess.garment.garment_input`: cropped, fitted, centred, grey
    on black) and read by the clothing models ``models`` on their own views; never judged
    as a digit. Raises :class:`~mnist_core.preprocess.garment.NoGarmentError` (a
    ``NoDigitError``) saying why when the photo cannot be made into one."""
    return read(garment_input(image, config), models, judge_image=False,
                novelty_cfg=novelty.NEVER)


def read_digits(image: np.ndarray, models: dict, config: PreprocessConfig = DEFAULT,
                view_cfg: ViewConfig | None = None, *, canvas: bool = False,
                refs: FarRefs | None = None) -> list[Reading]:
    """Every digit in ``image``, left to right, each read whole by :func:`read` (all
    digits' views go through each model in one batch). Where strokes may be one wide digit
    or two touching ones, the reading the models are surer of, on average, is kept
    (:func:`~mnist_core.preprocess.segment`). An image whose ink, read as one digit, is a
    solid patch (:func:`mnist_core.reading.novelty.ink_reasons`: noise, a blot) is not split: one
    reading of all of it. ``canvas`` and ``refs`` as for :func:`read_digit`."""
    parts, _ = _parts(image, models, config, canvas)
    return _read(parts, models, view_cfg, refs)


def read_row(image: np.ndarray, models: dict, config: PreprocessConfig = DEFAULT,
             view_cfg: ViewConfig | None = None, *, canvas: bool = False,
             refs: FarRefs | None = None) -> tuple[Reading, list[Reading]]:
    """``(whole, digits)``: :func:`read_digits`'s ``digits``, and ``whole``, all the ink read
    as one digit (:func:`read_digit`): the one digit found, or a row of digits preprocessed
    once more as one, in the same batch through the models."""
    parts, whole = _parts(image, models, config, canvas)
    if whole is parts[0]:
        readings = _read(parts, models, view_cfg, refs)
        return readings[0], readings
    readings = _read([*parts, whole], models, view_cfg, refs)
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


def _read(stages: list[Stages], models: dict, view_cfg: ViewConfig | None,
          refs: FarRefs | None) -> list[Reading]:
    x = np.stack([s.final for s in stages]).astype(np.float32)
    return _whole(x, models, refs, view_cfg, novelty.DEFAULT, stages)


def agreement(reading: Reading | Mapping[str, np.ndarray]) -> tuple[bool, dict[int, list[str]]]:
    """Whether all models name the same digit, and which models voted for which digit
    (of a reading, or of model name -> ``(10,)`` probabilities)."""
    probs = reading.probs if isinstance(reading, Reading) else reading
    votes: dict[int, list[str]] = {}
    for name, p in probs.items():
        votes.setdefault(int(np.argmax(p)), []).append(name)
    return len(votes) <= 1, votes

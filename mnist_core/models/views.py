"""Test-time views: read each digit a few ways and average what the models say.

One 28x28 image is one guess at how the writer's digit should look to an MNIST model. The
guess is off when the digit came tilted or at an odd size, and badly off when it came from
a source that stretched it to fill a square box (many scanned sets size-normalise width and
height independently, so a slanted 1 with a flag arrives as a wide bar that reads as a 4 or
a 7). So a digit as wide as it is tall is also read narrowed to half its width, and the
convnets also read every such guess turned a little either way and a little smaller and
larger (the MLPs, not being shift-invariant, measured worse with those); each model's
probabilities are averaged over its views. Which views a model uses is set per model in
:mod:`mnist_core.artifacts.registry`. Images are ``(28, 28) float32`` in [0, 1], white on black.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..preprocess import normalise_crop


@dataclass(frozen=True)
class ViewConfig:
    """Which extra views a digit is read in (each 0 or empty switches that view off)."""

    rotate_deg: float = 8.0              # turned this far either way: tilted writing
    scales: tuple[float, ...] = (0.9, 1.1)  # drawn this much smaller and larger
    squeeze: float = 0.5                 # width factor of the narrowed view (0 = none)
    squarish: float = 0.95               # narrowed only if width >= this x height: a digit
                                         # stretched to fill a square comes out square,
                                         # while 84% of MNIST test digits are narrower


DEFAULT_VIEWS = ViewConfig()
ASPECT_VIEWS = ViewConfig(rotate_deg=0.0, scales=())  # only the narrowed guess, if square
NO_VIEWS = ViewConfig(rotate_deg=0.0, scales=(), squeeze=0.0)


def _warp(img: np.ndarray, angle: float, scale: float) -> np.ndarray:
    m = cv2.getRotationMatrix2D((14.0, 14.0), angle, scale)  # the centre of mass
    return cv2.warpAffine(img, m, (28, 28), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def narrowed(img: np.ndarray, factor: float, squarish: float = 0.95) -> np.ndarray | None:
    """The digit re-fitted at ``factor`` x its width, or None if it is narrower than
    ``squarish`` x its height (then it was not stretched into a square).
    ``(28, 28) float32 [0, 1]`` in and out."""
    rows, cols = np.nonzero(img > 0.1)
    if rows.size == 0:
        return None
    crop = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    if w < squarish * h:
        return None
    # Resample at 4x the height so strokes stay strokes, then fit as preprocessing does.
    big = cv2.resize(crop, (max(1, round(4 * w * factor)), 4 * h), interpolation=cv2.INTER_LINEAR)
    return normalise_crop(np.clip(big, 0, 1))[2]


def _geometric(img: np.ndarray, cfg: ViewConfig, label: str) -> list[tuple[str, np.ndarray]]:
    out = [(label, img)]
    prefix = "" if label == "as is" else f"{label} "
    if cfg.rotate_deg:
        # OpenCV turns positive angles anticlockwise on screen.
        out += [(f"{prefix}{way} {cfg.rotate_deg:g}°", _warp(img, angle, 1.0)) for way, angle in
                (("↺", cfg.rotate_deg), ("↻", -cfg.rotate_deg))]
    out += [(f"{prefix}×{s:g}", _warp(img, 0.0, s)) for s in cfg.scales]
    return out


def named_views(img: np.ndarray, cfg: ViewConfig = DEFAULT_VIEWS) -> list[tuple[str, np.ndarray]]:
    """``(28, 28)`` model input -> ``[(caption, (28, 28) float32), ...]``, the input first
    (captions: "as is", "↺ 8°" anticlockwise, "×0.9" scaled, "0.5 wide" narrowed, ...).

    The turned and resized views are taken of the digit as preprocessed and, when it is
    about square, of its narrowed version too: two guesses at its true shape, each read the
    same ways, so each guess weighs the same in the average.
    """
    img = np.asarray(img, np.float32)
    out = _geometric(img, cfg, "as is")
    if cfg.squeeze:
        thin = narrowed(img, cfg.squeeze, cfg.squarish)
        if thin is not None:
            out += _geometric(thin, cfg, f"{cfg.squeeze:g} wide")
    return out


def views(img: np.ndarray, cfg: ViewConfig = DEFAULT_VIEWS) -> np.ndarray:
    """``(28, 28)`` model input -> ``(V, 28, 28) float32``, the input itself first."""
    return np.stack([v for _, v in named_views(img, cfg)]).astype(np.float32)


def model_config(model, cfg: ViewConfig | None = None) -> ViewConfig:
    """The views ``model`` reads a digit in: ``cfg`` if given, else the model's own
    (``model.views``, as the registry sets them; a model without one reads it once)."""
    return cfg if cfg is not None else getattr(model, "views", NO_VIEWS)


NamedViews = list[tuple[str, np.ndarray]]   # [(caption, (28, 28) float32), ...], input first


def view_sets(x: np.ndarray, configs) -> dict[ViewConfig, list[NamedViews]]:
    """``(N, 28, 28)`` inputs -> view config -> each input's :func:`named_views`."""
    x = np.asarray(x, np.float32)
    return {c: [named_views(img, c) for img in x] for c in dict.fromkeys(configs)}


def predict_views(models: dict, x: np.ndarray, cfg: ViewConfig | None = None, *,
                  named: dict[ViewConfig, list[NamedViews]] | None = None,
                  features: dict[str, np.ndarray | None] | None = None
                  ) -> dict[str, np.ndarray]:
    """``(N, 28, 28)`` inputs -> model name -> ``(N, 10)`` probabilities, each input's
    averaged over its views.

    ``cfg`` None: every model uses its own ``views`` (:func:`model_config`). All views of
    all inputs go through a model as one batch. ``named``: the inputs' views already made
    (:func:`view_sets`, for every config the models use), so a caller that shows them does
    not make them twice. ``features``: its keys name the models whose last hidden layer is
    wanted too; each is set to the inputs' own (their first view's) ``(N, D)`` features,
    from the same forward pass (``Model.predict_with_features``).
    """
    x = np.asarray(x, np.float32)
    configs = {name: model_config(model, cfg) for name, model in models.items()}
    if named is None:
        named = view_sets(x, configs.values())
    batches: dict[ViewConfig, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    out = {}
    for name, model in models.items():
        view_cfg = configs[name]
        if view_cfg not in batches:
            stacks = named[view_cfg]
            owner = np.repeat(np.arange(len(stacks)), [len(s) for s in stacks])
            counts = np.bincount(owner, minlength=len(stacks)).astype(np.float32)[:, None]
            batch = np.stack([img for s in stacks for _, img in s]).astype(np.float32)
            batches[view_cfg] = (batch, owner, counts)
        batch, owner, counts = batches[view_cfg]
        if features is not None and name in features:
            p, f = model.predict_with_features(batch)
            features[name] = f[np.searchsorted(owner, np.arange(len(x)))]  # the inputs
        else:
            p = model.predict_proba(batch)
        p = np.asarray(p, np.float32)
        total = np.zeros((len(x), p.shape[1]), np.float32)
        np.add.at(total, owner, p)
        out[name] = total / counts
    return out

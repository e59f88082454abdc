"""The stages put together: any image in, one :class:`Stages` per digit out.

A photo or scan takes the full path: shrunk to a working size, the sheet cut out of the
desk (:mod:`.page`), the ink's side decided (:func:`.ink.polarity`), the paper's lighting
fitted (:mod:`.page`), the ink taken as the distance from the paper (:mod:`.ink`), ruling
erased (:mod:`.page`). A drawing from the app's canvas (``canvas=True``) takes a short
path: its background is known, so no vote, lighting or ruling (:func:`.ink.ink_from_canvas`). Either way the ink map
is then split into digits (:mod:`.split`), each normalised as MNIST's were (:mod:`.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import Polarity, Stages, as_uint8, resize_max
from .geometry import DEFAULT_GEOMETRY, GeometryConfig
from .ink import (CANVAS_POLARITY, DEFAULT_INK, DEFAULT_POLARITY, InkConfig, PolarityConfig,
                  flatten_alpha, ink_from_canvas, ink_from_paper, polarity,
                  transparent_background)
from .page import (DEFAULT_LIGHTING, DEFAULT_RULING, DEFAULT_SHEET, LightingConfig,
                   RulingConfig, SheetConfig, fit_paper, isolate_sheet, remove_ruling)
from .split import DEFAULT_SPLIT, Judge, SplitConfig, one_digit, split_digits


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw images become MNIST-like 28x28 inputs: one frozen config per stage."""

    ink: InkConfig = DEFAULT_INK                 # working size, contrast, ink clean-up
    polarity: PolarityConfig = DEFAULT_POLARITY  # which side is ink
    sheet: SheetConfig = DEFAULT_SHEET           # a sheet on a desk
    lighting: LightingConfig = DEFAULT_LIGHTING  # the paper's lighting surface
    ruling: RulingConfig = DEFAULT_RULING        # ruled and squared paper
    split: SplitConfig = DEFAULT_SPLIT           # components, groups, touching digits
    geometry: GeometryConfig = DEFAULT_GEOMETRY  # stroke width, 20x20 box, 28x28, centring


DEFAULT = PreprocessConfig()

NO_ALPHA = "read as a photo: canvas=True, but the image has no alpha channel"


def photo_ink(image: np.ndarray, config: PreprocessConfig = DEFAULT) -> tuple[np.ndarray, Polarity]:
    """The full path: any-polarity, any-colour image -> ``(h, w) float32 [0, 1]`` white ink
    on black at working resolution, and the polarity decided on the way.

    ``image``: ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, uint8 or float in
    [0, 1]. An image with a transparent background is composited onto the paper its ink
    calls for; a sheet photographed on a darker desk is cut out (:func:`isolate_sheet`); the
    ink's side and the paper's level are decided (:func:`polarity`); the paper's lighting is
    fitted as a smooth surface (:func:`fit_paper`), so shadows and uneven light are followed
    but strokes are not; ink is the distance from it on the ink's side
    (:func:`ink_from_paper`); last, the lines of ruled or squared paper are erased
    (:func:`remove_ruling`).
    """
    img = as_uint8(image)
    decided = None
    if img.shape[2] == 4:
        if transparent_background(img, config.polarity):
            decided = polarity(img, config.polarity, config.lighting)
        img = flatten_alpha(img, decided, config.polarity)
    img = isolate_sheet(resize_max(img, config.ink.work_side), config.sheet)
    small = resize_max(img, config.polarity.vote_side)
    if decided is None:
        decided = polarity(small, config.polarity, config.lighting)
    paper = fit_paper(small, decided.light_ink, decided.paper_level, config.lighting,
                      decided.paper_mask)
    ink = ink_from_paper(img, paper, decided.light_ink, config.ink)
    return remove_ruling(ink, config.ruling), decided


def ink_map(image: np.ndarray, config: PreprocessConfig = DEFAULT) -> np.ndarray:
    """Any image -> ``(h, w) float32 [0, 1]`` white ink on black, by the full path
    (:func:`photo_ink`)."""
    return photo_ink(image, config)[0]


def _ink(image: np.ndarray, config: PreprocessConfig, canvas: bool
         ) -> tuple[np.ndarray, Polarity, list[str]]:
    """The ink map, its polarity, and notes: by the short path for a canvas drawing."""
    img = as_uint8(image)
    if not canvas:
        return (*photo_ink(img, config), [])
    if img.shape[2] == 4:
        return ink_from_canvas(img, config.ink), CANVAS_POLARITY, []
    return (*photo_ink(img, config), [NO_ALPHA])


def _annotate(stages: Stages, decided: Polarity, notes: list[str]) -> Stages:
    stages.polarity = decided
    stages.notes.extend(notes)
    return stages


def preprocess(image: np.ndarray, config: PreprocessConfig = DEFAULT, *,
               canvas: bool = False) -> Stages:
    """One digit in ``image`` -> :class:`Stages` (``final``: ``(28, 28) float32 [0, 1]``).

    ``image``: ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, uint8 or float in
    [0, 1], any polarity. ``canvas``: the image is an RGBA drawing from the app's canvas,
    drawn over its known background (the short path; an image without alpha, so not from the
    canvas, takes the full path anyway, with a note). All ink other than specks is read as a single digit. Raises
    :class:`NoDigitError` for a blank image.
    """
    ink, decided, notes = _ink(image, config, canvas)
    return _annotate(one_digit(ink, config.split, config.geometry), decided, notes)


def segment(image: np.ndarray, config: PreprocessConfig = DEFAULT, judge: Judge | None = None,
            *, canvas: bool = False) -> list[Stages]:
    """Every digit in ``image``, left to right, each as :class:`Stages`.

    ``image`` and ``canvas`` as for :func:`preprocess`. Separate components are grouped
    into digits by horizontal overlap; a group too wide for one digit is cut apart
    (:func:`~mnist_core.preprocess.split.split_digits`; ``judge``, a classifier's
    ``(N, 28, 28) -> (N, 10)`` probabilities, settles the doubtful widths). Raises
    :class:`NoDigitError` when blank.
    """
    ink, decided, notes = _ink(image, config, canvas)
    return [_annotate(s, decided, notes)
            for s in split_digits(ink, config.split, config.geometry, judge)]


def preprocess_batch(images: list[np.ndarray], config: PreprocessConfig = DEFAULT, *,
                     canvas: bool = False) -> np.ndarray:
    """Many single-digit images -> ``(N, 28, 28) float32 [0, 1]`` (blank ones raise)."""
    return np.stack([preprocess(img, config, canvas=canvas).final for img in images])

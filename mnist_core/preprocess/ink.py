"""Ink extraction: which side of a picture is ink (:func:`polarity`, the one place that
decides it), and the ink map itself, ``(h, w) float32 [0, 1]`` white ink on black.

A photo or scan gives its ink as the distance of each pixel from the paper's colour, on
the side the ink lies (:func:`ink_from_paper`). A drawing from the app's canvas needs no
such guessing (:func:`ink_from_canvas`): its background is known, so the ink is the
alpha channel where the background is transparent, else the distance from the canvas's
background colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .common import Polarity, as_uint8, resize_max
from .page import DEFAULT_LIGHTING, LightingConfig, paper_pixels

# ---------------------------------------------------------------------------------------
# Polarity
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolarityConfig:
    """How :func:`polarity` weighs its witnesses."""

    opaque: float = 0.5          # alpha (0-1) above this is drawn; below, the transparent
                                 # background
    light: float = 127.0         # drawn pixels brighter than this on average are light ink
    vote_side: int = 64          # the vote is taken on the picture shrunk to this side: paper
                                 # and lighting are smooth, and small is quick
    corner: float = 0.1          # a corner patch's side is this share of the shorter side...
    min_corner: int = 2          # ...and at least this many pixels
    corner_spread: float = 24.0  # grey levels: the three closest corners agree within this
    near: float = 12.0           # grey levels: a pixel this close to a level shares its colour
    corner_share: float = 0.5    # the corners are outvoted when fewer than this x as many
                                 # pixels share their colour as share the peak's (strokes run
                                 # through three corners of a tight crop)
    frame_weight: float = 0.75   # the frame's share counts this much beside the picture's:
                                 # a tight crop has paper along most of its edges, but strokes
                                 # do end on them
    bins: int = 32               # the commonest level is the fullest of this many histogram
                                 # bins over 0-255
    tail: float = 0.2            # percent: the surface witness compares the darkest and the
                                 # brightest this share of pixels (a few are enough for ink)


DEFAULT_POLARITY = PolarityConfig()


# A canvas drawing is light strokes over a known background (transparent or the canvas's
# black): nothing to decide.
CANVAS_POLARITY = Polarity(True, 0.0, ("canvas: strokes drawn over the canvas's own "
                                        "background, so nothing to decide",))


def _opaque(rgba: np.ndarray, config: PolarityConfig) -> np.ndarray:
    """``(H, W) bool``: the drawn pixels of ``rgba`` (``(H, W, 4) uint8``)."""
    return rgba[..., 3].astype(np.float32) / 255.0 > config.opaque


def transparent_background(rgba: np.ndarray, config: PolarityConfig = DEFAULT_POLARITY) -> bool:
    """Whether ``rgba`` (``(H, W, 4) uint8``) is drawn on a transparent background: some of
    it opaque, some not. Then the opaque pixels are the ink."""
    opaque = _opaque(rgba, config)
    return bool(opaque.any() and not opaque.all())


def _alpha_witness(rgba: np.ndarray, config: PolarityConfig) -> Polarity:
    """The drawn pixels of an image with a transparent background are the ink."""
    luma = float(rgba[..., :3][_opaque(rgba, config)].astype(np.float32).mean())
    light = luma > config.light
    return Polarity(light, 0.0 if light else 255.0, (
        f"alpha: a transparent background; the drawn pixels average grey {luma:.0f}, so "
        f"they are {'light' if light else 'dark'} ink, set on {'black' if light else 'white'}",))


def _corner_witness(small: np.ndarray, config: PolarityConfig) -> tuple[float, float]:
    """The paper level by the corners, which are paper even in a tight crop of a bold digit
    that touches every edge: the median of the three closest corners' levels, and how far
    apart those three are (grey levels)."""
    cs = max(config.min_corner, int(min(small.shape[:2]) * config.corner))
    patches = [small[:cs, :cs], small[:cs, -cs:], small[-cs:, :cs], small[-cs:, -cs:]]
    levels = np.array([np.median(p.astype(np.float32).mean(axis=2)) for p in patches])
    order = np.argsort(levels)
    trio = order[:3] if levels[order[2]] - levels[order[0]] <= levels[order[3]] - levels[order[1]] \
        else order[1:]
    return float(np.median(levels[trio])), float(levels[trio].max() - levels[trio].min())


def _majority_witness(grey: np.ndarray, config: PolarityConfig) -> tuple[float, str]:
    """The paper level by a vote of the whole picture and its frame, and the vote in words.

    ``grey``: ``(h, w) float32 [0, 255]``. Otsu's threshold splits the picture into a dark
    and a bright side; each side scores the share of the picture it covers (paper is usually
    most of it) plus ``frame_weight`` x the share of the frame, every border pixel, it
    covers. Each witness alone fails on some digits: a bold scanned 5 covers most of its
    picture but little of its frame; a thin 5 whose bar runs along the top edge covers much
    of its frame but little of the picture. The level is the commonest on the winning side.
    """
    grey8 = np.clip(grey, 0, 255).astype(np.uint8)
    threshold, _ = cv2.threshold(grey8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = grey > threshold
    frame = np.concatenate([bright[0], bright[-1], bright[1:-1, 0], bright[1:-1, -1]])
    bright_score = bright.mean() + config.frame_weight * frame.mean()
    paper_bright = bright_score > (1 + config.frame_weight) / 2
    side = grey[bright] if paper_bright else grey[~bright]
    if side.size == 0:
        side = grey.ravel()
    counts, edges = np.histogram(side, bins=config.bins, range=(0, 256))
    level = float(edges[int(np.argmax(counts))] + 256 / config.bins / 2)  # the bin's middle
    share = bright.mean() if paper_bright else 1 - bright.mean()
    frame_share = frame.mean() if paper_bright else 1 - frame.mean()
    return level, (f"majority: the {'bright' if paper_bright else 'dark'} side of Otsu's "
                   f"threshold ({threshold:.0f}) covers {share:.0%} of the picture and "
                   f"{frame_share:.0%} of its frame; its commonest grey is {level:.0f}")


def polarity(image: np.ndarray, config: PolarityConfig = DEFAULT_POLARITY,
             lighting: LightingConfig = DEFAULT_LIGHTING) -> Polarity:
    """Which side of ``image`` is ink, and the paper's grey level: the one decision.

    ``image``: ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, uint8 or float in
    [0, 1]. Witnesses, in order:

    * alpha: on a transparent background the drawn pixels are the ink, light or dark by
      their mean grey; this settles it.
    * corners: the level three corners agree on (paper even in a tight crop of a bold
      digit touching every edge), trusted unless strokes run through three of them (a 1 with
      flag and foot in a tight crop): then far fewer pixels share their colour than share
      the majority's.
    * majority: the commonest level on the side covering most of the picture and its frame.
    * surface: a lighting surface fitted to the pixels near that level
      (:func:`~mnist_core.preprocess.page.paper_pixels`); ink is whichever side strays
      furthest from it (a dim photo of white paper is still light paper, however grey it
      came out).
    """
    img = as_uint8(image)
    if img.shape[2] == 4:
        if transparent_background(img, config):
            return _alpha_witness(img, config)
        img = img[..., :3]
    small = resize_max(img, config.vote_side)
    grey = small.astype(np.float32).mean(axis=2)
    corner_level, spread = _corner_witness(small, config)
    peak_level, majority = _majority_witness(grey, config)
    corner_pixels, peak_pixels = (float(np.mean(np.abs(grey - level) <= config.near))
                                  for level in (corner_level, peak_level))
    close = spread < config.corner_spread
    corners_agree = close and corner_pixels >= config.corner_share * peak_pixels
    reasons = [f"corners: the closest three {'agree' if close else 'disagree'} (grey "
               f"{corner_level:.0f}, spread {spread:.0f}); {corner_pixels:.0%} of pixels share "
               f"their grey, {peak_pixels:.0%} the peak's", majority]
    level = corner_level if corners_agree else peak_level
    reasons.append(f"paper: grey {level:.0f}, by the {'corners' if corners_agree else 'majority'}")
    paper, strays = paper_pixels(grey, level, lighting)
    low, high = np.percentile(strays, [config.tail, 100 - config.tail])
    light_ink = bool(high > -low)
    reasons.append(f"surface: around the fitted paper, strays reach {-low:.0f} grey levels "
                   f"darker and {high:.0f} brighter, so the ink is the "
                   f"{'light' if light_ink else 'dark'} side")
    return Polarity(light_ink, level, tuple(reasons), paper)


def flatten_alpha(rgba: np.ndarray, decided: Polarity | None = None,
                  config: PolarityConfig = DEFAULT_POLARITY) -> np.ndarray:
    """``(H, W, 4) uint8`` RGBA -> ``(H, W, 3) uint8``, composited onto the paper level of
    ``decided`` (:func:`polarity` of this image, asked when its background is transparent),
    so white ink is set on black and black ink on white, never erased. With no decision:
    the RGB of a fully opaque image, or black when nothing is opaque.
    """
    if decided is None:
        return rgba[..., :3] if _opaque(rgba, config).all() else np.zeros_like(rgba[..., :3])
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgb * alpha + decided.paper_level * (1 - alpha)).round().astype(np.uint8)


# ---------------------------------------------------------------------------------------
# The ink map
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InkConfig:
    """How an ink map is taken and cleaned."""

    work_side: int = 320        # images are shrunk so their longer side is at most this
    min_contrast: float = 0.10  # ink weaker than this (0-1) against the paper is no digit
    blur_above: int = 100       # px: a working image larger than this is smoothed, as sensor
                                # noise and JPEG blocks are finer than any stroke there...
    blur_per: float = 400.0     # ...by a Gaussian of sigma = its longer side / this
    core: float = 0.5           # stroke cores are ink at least this x the strongest; their
                                # median is full ink (robust to a few glints)
    edge: float = 0.5           # ink below this x Otsu's threshold is dropped; above it the
                                # anti-aliased edges are kept and stretched onto [0, 1]
    canvas_background: tuple[int, int, int] = (0, 0, 0)  # RGB the app's canvas paints its
                                # strokes over (ui.canvas.PAPER); the drawing component
                                # returns it opaque, so there the ink is the distance from it


DEFAULT_INK = InkConfig()


def _finish(ink: np.ndarray, config: InkConfig) -> np.ndarray:
    """Raw ink ``(h, w) float32 >= 0`` -> denoised and stretched ``(h, w) float32 [0, 1]``:
    Otsu's threshold separates ink from noise and ``[edge x threshold, stroke cores]`` is
    stretched onto [0, 1]. All zero when nothing reaches ``min_contrast``."""
    h, w = ink.shape
    if max(h, w) > config.blur_above:
        ink = cv2.GaussianBlur(ink, (0, 0), max(h, w) / config.blur_per)
    strongest = float(ink.max())
    if strongest < config.min_contrast:
        return np.zeros((h, w), np.float32)
    peak = float(np.median(ink[ink >= config.core * strongest]))
    ink8 = (np.clip(ink / peak, 0, 1) * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    low = otsu / 255.0 * config.edge
    return np.clip((ink / peak - low) / (1.0 - low), 0, 1).astype(np.float32)


def ink_from_paper(img: np.ndarray, paper: np.ndarray, light_ink: bool,
                   config: InkConfig = DEFAULT_INK) -> np.ndarray:
    """The ink of a photo or scan: ``img`` ``(h, w, c) uint8`` and the paper's colour
    ``paper`` (``(ph, pw, c) float32``, any resolution, e.g. from
    :func:`~mnist_core.preprocess.page.fit_paper`) -> ``(h, w) float32 [0, 1]``.

    Ink is the per-channel distance from the paper on the ink's side, so coloured ink on
    white counts as much as black ink.
    """
    h, w, _ = img.shape
    surface = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    if surface.ndim == 2:
        surface = surface[..., None]
    diff = img.astype(np.float32) - surface
    ink = (diff if light_ink else -diff).max(axis=2)
    return _finish(np.clip(ink, 0, None) / 255.0, config)


def ink_from_canvas(drawing: np.ndarray, config: InkConfig = DEFAULT_INK) -> np.ndarray:
    """The ink of a canvas drawing, whose background is known: nothing to vote on, no
    lighting, no ruling.

    ``drawing``: ``(H, W, 4)`` RGBA uint8 (or float in [0, 1]) -> ``(h, w) float32 [0, 1]``,
    shrunk to ``work_side`` and cleaned as a photo's ink is (:func:`_finish`), so it reads
    as the full path reads it. On a transparent background (some alpha below 255) the
    alpha channel is the strokes' coverage; on an opaque one (what streamlit-drawable-canvas
    returns: its background colour painted in) the ink is each pixel's largest channel
    distance from ``canvas_background``, which is the coverage of strokes of any colour.
    """
    img = resize_max(as_uint8(drawing), config.work_side).astype(np.float32)
    if img[..., 3].min() < 255:
        coverage = img[..., 3]
    else:
        background = np.asarray(config.canvas_background, np.float32)
        coverage = np.abs(img[..., :3] - background).max(axis=2)
    return _finish(coverage / 255.0, config)

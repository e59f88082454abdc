"""Page clean-up for photos and scans: the sheet cut out of the desk around it, the
paper's lighting fitted as a smooth surface, and the lines of ruled or squared paper erased.

A canvas drawing needs none of this (:func:`~mnist_core.preprocess.ink.ink_from_canvas`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .common import INK_LEVEL
from .geometry import stroke_width

# ---------------------------------------------------------------------------------------
# A sheet on a desk
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SheetConfig:
    """When a bright region is a sheet of paper lying on a darker desk (:func:`isolate_sheet`)."""

    side: int = 160             # the search runs on the photo shrunk to this side: a sheet is big
    min_range: float = 40.0     # grey levels: a picture flatter than this holds no sheet and desk
    min_bright: float = 0.2     # less of the picture bright than this is a drawing on a dark
                                # canvas, not a sheet
    connectivity: int = 4       # bright pixels join the sheet through edges only, so a bright
                                # object touching it at a corner stays apart
    min_area: float = 0.3       # a sheet covers at least this share of the picture...
    max_area: float = 0.97      # ...and leaves some frame outside it
    filled: float = 0.85        # it fills at least this share of its rotated bounding box
                                # (a quadrilateral, not a blob)
    desk: float = 0.6           # the surface outside is at most this x the sheet's brightness
                                # (a soft shadow across a page is not that much darker)
    min_marks: float = 0.002    # dark marks cover at least this share of the sheet...
    max_stroke: float = 0.1     # ...in strokes thinner than this x the sheet's side (a
                                # drawing's bold strokes, not a sheet's writing)
    rim: float = 0.02           # this share of the side is also blanked inside the sheet's
                                # edge, where it casts shadows


DEFAULT_SHEET = SheetConfig()


def isolate_sheet(img: np.ndarray, config: SheetConfig = DEFAULT_SHEET) -> np.ndarray:
    """Blank out whatever surrounds a sheet of paper photographed on a darker surface.

    ``img``: ``(h, w, c)`` uint8; returns the same shape and dtype. A phone photo of a note
    often shows the desk around the page; the desk's colour in the corners would pass for
    the paper and the whole page would read as one huge stroke. A sheet is a large bright
    region (Otsu's threshold), close to a filled quadrilateral, that holds darker marks and
    leaves some of the frame outside it; a drawing's strokes are neither that large nor
    that solid. When one is found, everything outside it (and a thin rim inside, where its
    edge casts shadows) is painted the sheet's own median colour, so the sheet's lighting
    and ink are all that is left. Otherwise the image comes back unchanged.
    """
    h, w = img.shape[:2]
    grey = img.astype(np.float32).mean(axis=2)
    scale = min(1.0, config.side / max(h, w))
    sg = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                    interpolation=cv2.INTER_AREA) if scale < 1 else grey
    sg8 = np.clip(sg, 0, 255).astype(np.uint8)
    if int(sg8.max()) - int(sg8.min()) < config.min_range:
        return img
    _, bright = cv2.threshold(sg8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if bright.mean() < config.min_bright:
        return img
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=config.connectivity)
    if n <= 1:
        return img
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours((labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    contour = max(contours, key=cv2.contourArea)
    sheet = np.zeros_like(sg8)
    cv2.drawContours(sheet, [contour], -1, 1, thickness=-1)  # holes (the ink) filled in
    area, total = float(sheet.sum()), float(sheet.size)
    (_, _), (rw, rh), _ = cv2.minAreaRect(contour)
    if not config.min_area * total <= area <= config.max_area * total:
        return img
    marks = (sheet == 1) & (bright == 0)
    inside, outside = float(np.median(sg[sheet == 1])), float(np.median(sg[sheet == 0]))
    if not (area >= config.filled * rw * rh
            and outside <= config.desk * inside
            and marks.sum() >= config.min_marks * area
            and stroke_width(marks.astype(np.float32)) <= config.max_stroke * np.sqrt(area)):
        return img
    rim = max(1, round(config.rim * max(sheet.shape)))
    sheet = cv2.erode(sheet, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1,) * 2))
    mask = cv2.resize(sheet, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    if not mask.any():
        return img
    out = img.copy()
    out[~mask] = np.median(img[mask], axis=0).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------
# The paper's lighting
# ---------------------------------------------------------------------------------------

# The median absolute deviation of normal noise times this is its standard deviation.
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class LightingConfig:
    """How the paper's colour under uneven light is fitted (:func:`paper_pixels`,
    :func:`fit_paper`)."""

    seed: float = 24.0        # grey levels: pixels this close to the paper level start the
                              # fit as paper
    min_pixels: int = 12      # a fit needs at least this many paper pixels (twice the
                              # surface's six terms); with fewer, it stops or takes them all
    iterations: int = 5       # refits at most, each keeping the pixels near the last surface
    noise_floor: float = 2.0  # grey levels added to the measured spread, so the paper of a
                              # noiseless canvas (spread 0) is not split by rounding
    outlier: float = 3.0      # pixels further than this x the spread from the surface are
                              # not paper


DEFAULT_LIGHTING = LightingConfig()


def _design(h: int, w: int) -> np.ndarray:
    """``(h * w, 6)`` float64: a quadratic surface's terms at every pixel, in [-1, 1]."""
    yy, xx = np.mgrid[-1:1:h * 1j, -1:1:w * 1j]
    return np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], -1).reshape(-1, 6)


def _robust_fit(design: np.ndarray, g: np.ndarray, paper: np.ndarray, side: int,
                config: LightingConfig) -> np.ndarray:
    """Refit a surface to ``paper`` pixels (``(n,)`` bool over ``g``, ``(n,)`` grey),
    dropping outliers: both sides (``side=0``), or only those brighter (``+1``) or darker
    (``-1``) than the surface. Returns the final ``(n,)`` bool mask."""
    for _ in range(config.iterations):
        coef, *_ = np.linalg.lstsq(design[paper], g[paper], rcond=None)
        resid = g - design @ coef
        spread = MAD_TO_SIGMA * np.median(np.abs(resid[paper])) + config.noise_floor
        limit = config.outlier * spread
        keep = np.abs(resid) < limit if side == 0 else side * resid < limit
        if keep.sum() < config.min_pixels or np.array_equal(keep, paper):
            break
        paper = keep
    return paper


def paper_pixels(grey: np.ndarray, paper_level: float,
                 config: LightingConfig = DEFAULT_LIGHTING) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of ``grey`` (``(h, w) float32 [0, 255]``) that are paper, and how far
    every pixel strays from the paper's surface.

    Lighting across a sheet (a tilt, a vignette, a soft shadow) is close to a quadratic
    surface, so one is fitted by least squares to the pixels that are paper: at first those
    near ``paper_level``, then, refitting, those that do not stray from it on either side.
    Unlike a morphological filter this does not care how bold the strokes are, and on an
    even canvas or scan the surface comes out flat. Returns ``(h, w) bool`` and
    ``(h, w) float64`` grey levels (ink strays one way, which way is for
    :func:`~mnist_core.preprocess.ink.polarity` to say).
    """
    h, w = grey.shape
    design = _design(h, w)
    g = grey.ravel().astype(np.float64)
    paper = np.abs(g - paper_level) <= config.seed
    if paper.sum() < config.min_pixels:
        paper = np.ones_like(paper)
    paper = _robust_fit(design, g, paper, 0, config)
    coef, *_ = np.linalg.lstsq(design[paper], g[paper], rcond=None)
    return paper.reshape(h, w), (g - design @ coef).reshape(h, w)


def fit_paper(small: np.ndarray, light_ink: bool, paper_level: float,
              config: LightingConfig = DEFAULT_LIGHTING, paper: np.ndarray | None = None
              ) -> np.ndarray:
    """The paper's colour at every pixel of ``small`` (``(h, w, c)`` uint8), as a
    ``(h, w, c) float32 [0, 255]`` surface.

    ``paper``: the ``(h, w) bool`` paper pixels already found by :func:`paper_pixels`
    (found afresh from ``paper_level`` when None). A last fit drops only the pixels on the
    ink's side (``light_ink``: brighter than the surface), so the edges of strokes do not
    pull it, and then fits each channel, so coloured paper stays coloured.
    """
    h, w, channels = small.shape
    grey = small.astype(np.float32).mean(axis=2)
    if paper is None or paper.shape != (h, w):
        paper, _ = paper_pixels(grey, paper_level, config)
    design = _design(h, w)
    g = grey.ravel().astype(np.float64)
    paper = _robust_fit(design, g, paper.ravel(), 1 if light_ink else -1, config)
    pixels = small.reshape(-1, channels).astype(np.float64)
    coefs, *_ = np.linalg.lstsq(design[paper], pixels[paper], rcond=None)
    return (design @ coefs).reshape(h, w, channels).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Ruled and squared paper
# ---------------------------------------------------------------------------------------

# Keeps a division finite where a band is as dark as ink gets.
_EPS = 1e-3


@dataclass(frozen=True)
class RulingConfig:
    """What counts as the lines of ruled or squared paper, and how they are erased
    (:func:`remove_ruling`)."""

    line_ink: float = 0.1       # a rule is fainter than a pen: ink above this counts...
    line_cover: float = 0.5     # ...along more than this share of a row for it to be a rule
    min_lines: int = 5          # a digit has at most three bars (3, 8); a page shows more rules
    min_pitch: float = 4.0      # px: lines closer than this are texture, not ruling
    pitch_spread: float = 0.25  # rules are evenly spaced: the pitch's std is under this x its mean
    max_thickness: float = 0.3  # rules are thin: their median thickness is under this x the
                                # pitch (a digit's bars are as thick as its strokes)
    pad: int = 1                # rows either side of a rule, darkened by its anti-aliased
                                # edges, are erased with it
    slant: float = 2.0          # a stroke crossing a rule is followed up to this many columns
                                # per erased row either way, so slanted strokes cross too
    rule_margin: float = 0.1    # ink this much above a band's own darkness is a stroke over it
    along_margin: int = 2       # px: a band inked this much thicker than the rules holds a
                                # stroke lying along the rule


DEFAULT_RULING = RulingConfig()


def _bands(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a 1-D bool array as ``(first, last)`` index pairs."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _rules(ink: np.ndarray, config: RulingConfig) -> list[tuple[int, int]]:
    """The rows of ``ink`` that are ruling lines, as ``(first, last)`` bands (may be none)."""
    lines = _bands((ink > config.line_ink).mean(axis=1) > config.line_cover)
    if len(lines) < config.min_lines:
        return []
    pitch = np.diff([(a + b) / 2 for a, b in lines])
    # The median, as a stroke lying along one rule makes that band thicker.
    thickness = np.median([b - a + 1 for a, b in lines])
    if (pitch.min() < config.min_pitch or pitch.std() > config.pitch_spread * pitch.mean()
            or thickness > config.max_thickness * pitch.mean()):
        return []  # uneven, or bars as thick as strokes: not a ruled page
    return lines


def _bridge(above: np.ndarray, below: np.ndarray, t: float, reach: int) -> np.ndarray:
    """The ink a row a fraction ``t`` of the way from row ``above`` to row ``below`` would
    hold if every stroke ran straight between them: at each column, the best straight
    segment through it (slanting up to ``reach`` columns) joining ink above to ink below.
    A stroke crossing a rule stays as wide as it is, vertical or slanted."""
    w = above.size
    xs = np.arange(w)[None, :]
    shifts = np.arange(-reach, reach + 1)[:, None]
    xa = np.clip(np.round(xs - t * shifts).astype(int), 0, w - 1)
    xb = np.clip(np.round(xs + (1 - t) * shifts).astype(int), 0, w - 1)
    return np.minimum(above[xa], below[xb]).max(axis=0).astype(np.float32)


def _erase(ink: np.ndarray, source: np.ndarray, bands: list[tuple[int, int]],
           config: RulingConfig) -> None:
    """Replace each row band of ``ink`` (in place) by what the ``source`` rows just above
    and below it join across it (:func:`_bridge`). A stroke running along a rule is kept:
    where the band's ink is thicker than the rules are (their median thickness), and where
    it is well above the band's own level (its median darkness)."""
    if not bands:
        return
    h = ink.shape[0]
    rule = float(np.median([b - a + 1 for a, b in bands]))
    for a, b in bands:
        lo, hi = max(0, a - config.pad), min(h, b + 1 + config.pad)
        top, bottom = max(0, a - config.pad - 1), min(h - 1, b + config.pad + 1)
        reach = round(config.slant * (b - a + 1 + 2 * config.pad))
        fill = np.stack([_bridge(source[top], source[bottom],
                                 (r - top) / max(bottom - top, 1), reach) for r in range(lo, hi)])
        band = ink[lo:hi]
        level = float(np.median(band.max(axis=0))) + config.rule_margin
        excess = np.clip((band - level) / max(1.0 - level, _EPS), 0, 1)
        along = (band > INK_LEVEL).sum(axis=0) > rule + config.along_margin
        ink[lo:hi] = np.where(along[None], band, np.maximum(fill, excess))


def remove_ruling(ink: np.ndarray, config: RulingConfig = DEFAULT_RULING) -> np.ndarray:
    """Erase the lines of ruled or squared paper from an ink map.

    ``ink``: ``(h, w) float32 [0, 1]``, returned the same shape (itself when no ruling is
    found). A ruling line inks most of its row or column (faintly, as a rule is fainter than
    a pen), and a ruled page shows several, thin and at a steady pitch; a digit has at most
    three bars, each a good fraction of the gap between them, so nothing is erased unless
    at least ``min_lines`` thin lines are evenly spaced. Each line is replaced by the ink
    just beside it (see :func:`_erase`), taken with the lines of the other direction already
    gone, so the squares of squared paper leave nothing behind.
    """
    rows, cols = _rules(ink, config), _rules(ink.T, config)
    if not rows and not cols:
        return ink
    on_rows = np.zeros(ink.shape[0], bool)
    on_cols = np.zeros(ink.shape[1], bool)
    for a, b in rows:
        on_rows[max(0, a - config.pad):b + 1 + config.pad] = True
    for a, b in cols:
        on_cols[max(0, a - config.pad):b + 1 + config.pad] = True
    out = ink.copy()
    _erase(out, np.where(on_cols[None, :], 0, ink), rows, config)
    out_t = out.T.copy()
    _erase(out_t, np.where(on_rows[None, :], 0, ink.T), cols, config)
    return out_t.T.copy()

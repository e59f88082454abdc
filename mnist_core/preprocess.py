"""Turn a drawing, photo or scan into the 28x28 images MNIST models expect.

MNIST digits were made by cropping each digit to its ink, fitting it into a 20x20 box
keeping the aspect ratio (anti-aliased), and pasting it into 28x28 so that its centre of
mass sits at the centre. A model trained on MNIST has only ever seen that, so every input
goes through the same steps here; each intermediate stage is kept for display.

Images flow as ``(H, W) float32 in [0, 1]``, white ink on black, from :func:`ink_map` on.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse decompression bombs before decoding: 40 megapixels is a 7300x5500 photo.
MAX_PIXELS = 40_000_000
MAX_BYTES = 20 * 1024 * 1024


class NoDigitError(ValueError):
    """The image holds no ink that could be a digit (blank canvas, empty page)."""


class ImageReadError(ValueError):
    """The bytes are not a readable image, or the image is too large."""


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw images become MNIST-like 28x28 inputs."""

    size: int = 28                  # output side, as MNIST
    box: int = 20                   # the digit's longer side after fitting, as MNIST
    work_side: int = 320            # images are resized so their longer side is at most this
    min_contrast: float = 0.10      # ink weaker than this (0-1) against the paper is no digit
    min_ink_frac: float = 0.0003    # a digit covers at least this fraction of the image
    speck_frac: float = 0.06        # components smaller than this x the largest are specks
    stroke_ratio: float = 0.117     # median MNIST stroke width / digit height (measured on train)
    stroke_tolerance: float = 1.35  # widths within this factor of the target are left alone
    multi_gap: float = 0.35         # components overlapping less than this are separate digits
    tall_pair: float = 0.6          # two components this close in height are each a digit...
    nested: float = 0.7             # ...unless one lies this much within the other's columns
    touching_aspect: float = 1.55   # a blob wider than this x its height is two digits or more
    row_aspect: float = 0.75        # wider than this x its height beside other digits, or
    alone_aspect: float = 1.2       # than this alone, a blob may be two digits: a judge decides
    split_margin: float = 0.15      # how much surer the judge must be of the split reading
    faint: float = 0.5              # beside bolder ink, a group fainter than this is no digit


DEFAULT = PreprocessConfig()


@dataclass
class Stages:
    """Every step from input to model input, for display and debugging.

    ``ink``: ``(h, w) float32 [0, 1]`` white-on-black ink at working resolution.
    ``mask``: ``(h, w) bool`` ink kept after speck removal. ``box``: ``(x, y, w, h)`` of the
    digit in ``ink``. ``cropped``: the digit cut out. ``fitted``: ``(<=20, <=20)`` after fitting.
    ``boxed``: fitted digit pasted at the geometric centre of 28x28 (before centring by mass).
    ``final``: ``(28, 28) float32 [0, 1]``, what the models see.
    """

    ink: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]
    cropped: np.ndarray
    fitted: np.ndarray
    boxed: np.ndarray
    final: np.ndarray
    stroke_width: float = 0.0
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------

def decode_image(data: bytes, max_pixels: int = MAX_PIXELS,
                 max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Decode PNG/JPEG/WebP/BMP/TIFF/GIF bytes into ``(H, W, 3|4) uint8`` RGB(A).

    Applies EXIF rotation, keeps transparency, takes a GIF's first frame. Raises
    :class:`ImageReadError` for unreadable data, or images over ``max_bytes``/``max_pixels``.
    """
    if len(data) > max_bytes:
        raise ImageReadError(f"file is {len(data) / 2**20:.1f} MB; the limit is "
                             f"{max_bytes / 2**20:.0f} MB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageReadError(f"image is {width}x{height} pixels; the limit is "
                                     f"{max_pixels / 1e6:.0f} megapixels")
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "RGB")
            return np.asarray(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageReadError("not a readable image (unknown or corrupt format)") from exc
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError, EOFError) as exc:
        raise ImageReadError(f"not a readable image ({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------------------
# Ink extraction
# ---------------------------------------------------------------------------------------

def _flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """Composite RGBA onto whichever background contrasts with the opaque pixels.

    A drawing exported with a transparent background may have black or white ink; pasting
    it onto white would erase white ink, so the paper is chosen opposite to the ink.
    """
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    opaque = alpha[..., 0] > 0.5
    if opaque.all() or not opaque.any():
        return rgba[..., :3] if opaque.all() else np.zeros_like(rgba[..., :3])
    ink_luma = rgb[opaque].mean()
    paper = 0.0 if ink_luma > 127 else 255.0
    return (rgb * alpha + paper * (1 - alpha)).round().astype(np.uint8)


def _resize_max(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def _design(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[-1:1:h * 1j, -1:1:w * 1j]
    return np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], -1).reshape(-1, 6)


def _robust_fit(design: np.ndarray, g: np.ndarray, paper: np.ndarray, side: int) -> np.ndarray:
    """Refit a surface to ``paper`` pixels, dropping outliers: both sides (``side=0``),
    or only those brighter (``+1``) or darker (``-1``) than the surface. Returns the mask."""
    for _ in range(5):
        coef, *_ = np.linalg.lstsq(design[paper], g[paper], rcond=None)
        resid = g - design @ coef
        spread = 1.4826 * np.median(np.abs(resid[paper])) + 2.0
        keep = np.abs(resid) < 3 * spread if side == 0 else side * resid < 3 * spread
        if keep.sum() < 12 or np.array_equal(keep, paper):
            break
        paper = keep
    return paper


def _fit_paper(small: np.ndarray, grey: np.ndarray, paper_level: float) -> tuple[np.ndarray, bool]:
    """The paper's colour at every pixel of ``small`` (``(h, w, c)`` uint8), and whether the
    paper is darker than the ink.

    Lighting across a sheet (a tilt, a vignette, a soft shadow) is close to a quadratic
    surface, so one is fitted by least squares to the pixels that are paper: at first those
    near ``paper_level``, then, refitting, those that do not stray from the surface. Ink is
    on whichever side strays furthest (a dim photo of white paper is still light paper,
    however grey it came out); a last fit drops only that side. Unlike a morphological
    filter this does not care how bold the strokes are, and on an even canvas or scan the
    surface comes out flat.
    """
    h, w, channels = small.shape
    design = _design(h, w)
    g = grey.ravel().astype(np.float64)
    paper = np.abs(g - paper_level) <= 24
    if paper.sum() < 12:
        paper = np.ones_like(paper)
    paper = _robust_fit(design, g, paper, side=0)
    coef, *_ = np.linalg.lstsq(design[paper], g[paper], rcond=None)
    low, high = np.percentile(g - design @ coef, [0.2, 99.8])
    dark_paper = bool(high > -low)
    paper = _robust_fit(design, g, paper, side=1 if dark_paper else -1)
    pixels = small.reshape(-1, channels).astype(np.float64)
    coefs, *_ = np.linalg.lstsq(design[paper], pixels[paper], rcond=None)
    return (design @ coefs).reshape(h, w, channels).astype(np.float32), dark_paper


def isolate_sheet(img: np.ndarray) -> np.ndarray:
    """Blank out whatever surrounds a sheet of paper photographed on a darker surface.

    ``img``: ``(h, w, c)`` uint8. A phone photo of a note often shows the desk around the
    page; the desk's colour in the corners would pass for the paper and the whole page would
    read as one huge stroke. A sheet is a large bright region (Otsu's threshold), close to a
    filled quadrilateral, that holds darker marks and leaves some of the frame outside it;
    a drawing's strokes are neither that large nor that solid. When one is found, everything
    outside it (and a thin rim inside, where its edge casts shadows) is painted the sheet's
    own median colour, so the sheet's lighting and ink are all that is left. Otherwise the
    image comes back unchanged.
    """
    h, w = img.shape[:2]
    grey = img.astype(np.float32).mean(axis=2)
    small_side = 160
    scale = min(1.0, small_side / max(h, w))
    sg = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                    interpolation=cv2.INTER_AREA) if scale < 1 else grey
    sg8 = np.clip(sg, 0, 255).astype(np.uint8)
    if int(sg8.max()) - int(sg8.min()) < 40:
        return img
    _, bright = cv2.threshold(sg8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if bright.mean() < 0.2:
        return img  # too little is bright for a sheet (a drawing on a dark canvas)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
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
    if not 0.3 * total <= area <= 0.97 * total:      # big, and some frame outside it
        return img
    marks = (sheet == 1) & (bright == 0)
    inside, outside = float(np.median(sg[sheet == 1])), float(np.median(sg[sheet == 0]))
    if not (area >= 0.85 * rw * rh                   # close to a filled quadrilateral
            and outside <= 0.6 * inside              # on a clearly darker surface (a soft
                                                     # shadow across a page is not)
            and marks.sum() >= 0.002 * area          # with marks on it...
            and stroke_width(marks.astype(np.float32)) <= 0.1 * np.sqrt(area)):  # ...thin
        return img
    rim = max(1, round(0.02 * max(sheet.shape)))
    sheet = cv2.erode(sheet, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1,) * 2))
    mask = cv2.resize(sheet, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    if not mask.any():
        return img
    out = img.copy()
    out[~mask] = np.median(img[mask], axis=0).astype(np.uint8)
    return out


def _majority_level(grey: np.ndarray) -> float:
    """The paper's grey level by a vote of the whole picture and its frame.

    ``grey``: ``(h, w) float32 [0, 255]``. Used when the corners disagree. Otsu's threshold
    splits the picture into a dark and a bright side; each side scores the share of the
    picture it covers (paper is usually most of it) plus three quarters of the share of
    the frame, every border pixel, it covers (a tight crop has paper along most of its
    edges, but strokes do end on them, so this witness counts a little less). Each
    witness alone fails on some digits: a bold scanned 5 covers most of its picture but
    little of its frame; a thin 5 whose bar runs along the top edge covers much of its
    frame but little of the picture. Returns the most common level on the winning side.
    """
    grey8 = np.clip(grey, 0, 255).astype(np.uint8)
    threshold, _ = cv2.threshold(grey8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = grey > threshold
    frame = np.concatenate([bright[0], bright[-1], bright[1:-1, 0], bright[1:-1, -1]])
    frame_weight = 0.75
    bright_score = bright.mean() + frame_weight * frame.mean()
    side = grey[bright] if bright_score > (1 + frame_weight) / 2 else grey[~bright]
    if side.size == 0:
        side = grey.ravel()
    counts, edges = np.histogram(side, bins=32, range=(0, 256))
    return float(edges[int(np.argmax(counts))] + 4)


def ink_map(image: np.ndarray, config: PreprocessConfig = DEFAULT) -> np.ndarray:
    """Any-polarity, any-colour image -> ``(h, w) float32 [0, 1]`` white ink on black.

    ``image``: ``(H, W)`` gray, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, uint8 or float in
    [0, 1]. A sheet photographed on a darker desk is cut out first (:func:`isolate_sheet`).
    The paper's colour is taken from the corners (or the histogram's peak), its
    lighting as a smooth surface fitted to the paper pixels (so shadows and uneven light
    are followed but strokes are not), ink is the per-channel distance from it on the side
    where the strokes lie (so coloured ink counts fully), then Otsu's threshold separates
    ink from noise and the remaining range is stretched to [0, 1]; last, the lines of ruled
    or squared paper are erased (:func:`remove_ruling`).
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = _flatten_alpha(img)
    if img.ndim == 2:
        img = img[..., None]
    img = _resize_max(img, config.work_side)
    if img.ndim == 2:
        img = img[..., None]
    img = isolate_sheet(img)
    h, w, _ = img.shape
    # Polarity from the corners: they are paper even in a tight crop of a bold digit that
    # touches every edge (where the border, or even most of the picture, is ink).
    small = _resize_max(img, 64)
    if small.ndim == 2:
        small = small[..., None]
    grey = small.astype(np.float32).mean(axis=2)
    cs = max(2, min(grey.shape) // 10)
    patches = [small[:cs, :cs], small[:cs, -cs:], small[-cs:, :cs], small[-cs:, -cs:]]
    levels = np.array([np.median(p.astype(np.float32).mean(axis=2)) for p in patches])
    order = np.argsort(levels)
    trio = order[:3] if levels[order[2]] - levels[order[0]] <= levels[order[3]] - levels[order[1]] \
        else order[1:]
    corner_level = float(np.median(levels[trio]))
    # The other witness: the main peak on the side (dark or bright) that covers most of
    # the picture and of its frame.
    peak_level = _majority_level(grey)
    near = lambda level: float(np.mean(np.abs(grey - level) <= 12))  # noqa: E731
    # Trust the corners unless strokes run through three of them (a 1 with flag and foot
    # in a tight crop): then far fewer pixels share their colour than the peak's.
    corners_agree = (levels[trio].max() - levels[trio].min() < 24
                     and near(corner_level) >= 0.5 * near(peak_level))
    paper_level = corner_level if corners_agree else peak_level
    paper_small, dark_paper = _fit_paper(small, grey, paper_level)
    paper = cv2.resize(paper_small, (w, h), interpolation=cv2.INTER_LINEAR)
    if paper.ndim == 2:
        paper = paper[..., None]
    diff = img.astype(np.float32) - paper
    # Ink is the per-channel distance from the paper on the far side, so coloured ink on
    # white counts as much as black ink.
    ink = (diff if dark_paper else -diff).max(axis=2)
    ink = np.clip(ink, 0, None) / 255.0
    if max(h, w) > 100:
        # Sensor noise and JPEG blocks are finer than any stroke at this resolution.
        ink = cv2.GaussianBlur(ink, (0, 0), max(h, w) / 400)
    strongest = float(ink.max())
    if strongest < config.min_contrast:
        return np.zeros((h, w), np.float32)
    # The typical brightness of the stroke cores, robust to a few glints.
    peak = float(np.median(ink[ink >= 0.5 * strongest]))
    ink8 = (np.clip(ink / peak, 0, 1) * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Keep anti-aliased edges: stretch [half the threshold, peak] onto [0, 1].
    low = otsu / 255.0 * 0.5
    ink = np.clip((ink / peak - low) / (1.0 - low), 0, 1).astype(np.float32)
    return remove_ruling(ink)


def _bands(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a 1-D bool array as ``(first, last)`` index pairs."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _rules(ink: np.ndarray) -> list[tuple[int, int]]:
    """The rows of ``ink`` that are ruling lines, as ``(first, last)`` bands (may be none)."""
    lines = _bands((ink > 0.1).mean(axis=1) > 0.5)
    if len(lines) < 5:  # a digit has at most three bars (3, 8); a page shows more rules
        return []
    pitch = np.diff([(a + b) / 2 for a, b in lines])
    # The median, as a stroke lying along one rule makes that band thicker.
    thickness = np.median([b - a + 1 for a, b in lines])
    if pitch.min() < 4 or pitch.std() > 0.25 * pitch.mean() or thickness > 0.3 * pitch.mean():
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


def _erase(ink: np.ndarray, source: np.ndarray, bands: list[tuple[int, int]]) -> None:
    """Replace each row band of ``ink`` (in place) by what the ``source`` rows just above
    and below it join across it (:func:`_bridge`). A stroke running along a rule is kept:
    where the band's ink is thicker than the rules are (their median thickness), and where
    it is well above the band's own level (its median darkness)."""
    if not bands:
        return
    h = ink.shape[0]
    rule = float(np.median([b - a + 1 for a, b in bands]))
    for a, b in bands:
        lo, hi = max(0, a - 1), min(h, b + 2)
        top, bottom = max(0, a - 2), min(h - 1, b + 2)
        reach = 2 * (b - a + 3)
        fill = np.stack([_bridge(source[top], source[bottom],
                                 (r - top) / max(bottom - top, 1), reach) for r in range(lo, hi)])
        band = ink[lo:hi]
        level = float(np.median(band.max(axis=0))) + 0.1  # the rule's own darkness
        excess = np.clip((band - level) / max(1.0 - level, 1e-3), 0, 1)
        along = (band > 0.25).sum(axis=0) > rule + 2  # a stroke lies in the rule here
        ink[lo:hi] = np.where(along[None], band, np.maximum(fill, excess))


def remove_ruling(ink: np.ndarray) -> np.ndarray:
    """Erase the lines of ruled or squared paper from an ink map.

    ``ink``: ``(h, w) float32 [0, 1]``. A ruling line inks most of its row or column
    (faintly, as a rule is fainter than a pen: above 0.1 is enough), and a ruled page shows
    several, thin and at a steady pitch; a digit has at most three bars, each a good
    fraction of the gap between them, so nothing is erased unless at least five thin lines
    are evenly spaced. Each line is replaced by the ink just beside it (see :func:`_erase`),
    taken with the lines of the other direction already gone, so the squares of squared
    paper leave nothing behind.
    """
    rows, cols = _rules(ink), _rules(ink.T)
    if not rows and not cols:
        return ink
    on_rows = np.zeros(ink.shape[0], bool)
    on_cols = np.zeros(ink.shape[1], bool)
    for a, b in rows:
        on_rows[max(0, a - 1):b + 2] = True
    for a, b in cols:
        on_cols[max(0, a - 1):b + 2] = True
    out = ink.copy()
    _erase(out, np.where(on_cols[None, :], 0, ink), rows)
    out_t = out.T.copy()
    _erase(out_t, np.where(on_rows[None, :], 0, ink.T), cols)
    return out_t.T.copy()


# ---------------------------------------------------------------------------------------
# Components and segmentation
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Blob:
    """A group of connected components that forms one digit: box and pixel labels."""

    x: int
    y: int
    w: int
    h: int
    labels: tuple[int, ...]


def _components(ink: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, list[Blob]]:
    """Label connected ink; drop specks. Returns the label image and one Blob per component."""
    binary = (ink > 0.25).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return labels, []
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = areas.max()
    min_area = max(config.speck_frac * largest, config.min_ink_frac * ink.size)
    blobs = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if area >= min_area:
            blobs.append(Blob(int(x), int(y), int(w), int(h), (i,)))
    return labels, blobs


def _merge(a: Blob, b: Blob) -> Blob:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    x1, y1 = max(a.x + a.w, b.x + b.w), max(a.y + a.h, b.y + b.h)
    return Blob(x0, y0, x1 - x0, y1 - y0, a.labels + b.labels)


def _one_digit(a: Blob, b: Blob, config: PreprocessConfig) -> bool:
    """Whether two components side by side (``a`` starting left of ``b``) are one digit.

    They are when they overlap horizontally: a 5's bar over its bowl, a 1's flag. But two
    digits of about the same height written close together overlap too (a 2's tail runs
    under the next digit, a slanted 1 leans over its neighbour), so such a pair is one
    digit only when one lies mostly within the other's columns.
    """
    overlap = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    narrow = min(a.w, b.w)
    if overlap <= config.multi_gap * narrow:
        return False
    if min(a.h, b.h) >= config.tall_pair * max(a.h, b.h):
        return overlap > config.nested * narrow
    return True


def _group_digits(blobs: list[Blob], config: PreprocessConfig) -> list[Blob]:
    """Merge components into digits, left to right.

    Strokes of one digit overlap horizontally (the bar of a 5, the two strokes of a 4);
    neighbouring digits barely do (:func:`_one_digit`). Fragments much shorter than the
    tallest digit are attached to their nearest neighbour rather than read as digits of
    their own.
    """
    groups = sorted(blobs, key=lambda b: b.x)
    merged = True
    while merged and len(groups) > 1:
        merged = False
        for i in range(len(groups) - 1):
            a, b = groups[i], groups[i + 1]
            if _one_digit(a, b, config):
                groups[i:i + 2] = [_merge(a, b)]
                merged = True
                break
    tallest = max(g.h for g in groups)
    while len(groups) > 1:
        short = [i for i, g in enumerate(groups) if g.h < 0.45 * tallest]
        if not short:
            break
        i = short[0]
        g = groups[i]
        centre = g.x + g.w / 2
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(groups)]
        j = min(neighbours, key=lambda j: abs(groups[j].x + groups[j].w / 2 - centre))
        lo, hi = sorted((i, j))
        groups[lo:hi + 1] = [_merge(groups[lo], groups[hi])]
    return groups


def _seam(patch: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The top-to-bottom path through ``patch`` (``(h, w)`` ink) that crosses the least ink,
    kept within columns ``[lo, hi)`` and moving at most one column per row: ``(h,)`` int,
    the column where each row is cut. Unlike a straight cut it can follow the gap between
    two digits that lean into each other.
    """
    band = patch[:, lo:hi].astype(np.float64)
    h, w = band.shape
    cost = band.copy()
    # A faint pull towards the middle of the window breaks ties in blank gaps.
    cost += 1e-3 * np.abs(np.arange(w) - (w - 1) / 2)[None, :] / max(w, 1)
    total = cost.copy()
    for y in range(1, h):
        prev = total[y - 1]
        left = np.concatenate([[np.inf], prev[:-1]])
        right = np.concatenate([prev[1:], [np.inf]])
        total[y] += np.minimum(np.minimum(left, prev), right)
    path = np.empty(h, np.int64)
    path[-1] = int(np.argmin(total[-1]))
    for y in range(h - 2, -1, -1):
        x = path[y + 1]
        a, b = max(0, x - 1), min(w, x + 2)
        path[y] = a + int(np.argmin(total[y, a:b]))
    return path + lo


def _drop_faint(ink: np.ndarray, labels: np.ndarray, groups: list[Blob],
                config: PreprocessConfig) -> list[Blob]:
    """``groups`` less those whose ink is much fainter than the boldest group's: a
    shadow's edge or a rule left over, not a digit written with the same pen (strength:
    the 90th percentile of a group's ink; fainter: below ``faint`` x the strongest's)."""
    if len(groups) < 2:
        return groups
    strength = [float(np.percentile(ink[np.isin(labels, g.labels)], 90)) for g in groups]
    return [g for g, v in zip(groups, strength) if v >= config.faint * max(strength)]


CUTS = ("thinnest", "waist", "seam")  # the ways _split_touching can cut


def _split_touching(ink: np.ndarray, blob: Blob, n: int, cut: str = "thinnest") -> list[np.ndarray]:
    """``blob`` cut into ``n`` digits: one ``(h, w)`` bool mask over the blob's box per
    digit, left to right. Each cut lies near where an even split would put it, at:
    ``"thinnest"``, the column crossing the least ink (two digits joined by a ligature);
    ``"waist"``, the column where the ink spans the fewest rows, top to bottom (two round
    digits whose rims touch: there the least-ink column falls inside a loop);
    ``"seam"``, a path that may bend (:func:`_seam`; digits that lean into each other)."""
    if n <= 1:
        return [np.ones((blob.h, blob.w), bool)]
    patch = ink[blob.y:blob.y + blob.h, blob.x:blob.x + blob.w]
    if cut == "waist":
        inked = patch > 0.25
        rows = np.arange(blob.h)[:, None]
        top = np.where(inked, rows, blob.h).min(axis=0)
        bottom = np.where(inked, rows, -1).max(axis=0)
        profile = np.where(bottom >= top, bottom - top + 1, 0).astype(np.float64)
    else:
        profile = patch.sum(axis=0)
    profile = np.convolve(profile, np.ones(3) / 3, mode="same")
    step, cuts = blob.w / n, []
    for k in range(1, n):
        lo, hi = int(step * (k - 0.35)), max(int(step * (k + 0.35)), int(step * (k - 0.35)) + 1)
        cuts.append(_seam(patch, lo, hi) if cut == "seam"
                    else np.full(blob.h, lo + int(np.argmin(profile[lo:hi]))))
    xs = np.arange(blob.w)[None, :]
    edges = [np.zeros(blob.h, np.int64), *cuts, np.full(blob.h, blob.w)]
    return [(xs >= a[:, None]) & (xs < b[:, None]) for a, b in zip(edges, edges[1:])]


# ---------------------------------------------------------------------------------------
# MNIST-style normalisation
# ---------------------------------------------------------------------------------------

def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels of a white-on-black image: 2 x area / perimeter.

    A stroke of length L and width w has area ~ L*w and outline ~ 2L, so this holds for
    any digit without skeletonising it.
    """
    binary = (ink > 0.5).astype(np.uint8)
    area = float(binary.sum())
    if area == 0:
        return 0.0
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * area / max(perimeter, 1.0)


def _normalise_stroke(crop: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, float]:
    """Thicken hairlines and thin marker strokes towards MNIST's width (relative to size)."""
    side = max(crop.shape)
    # Work at a fixed resolution so the morphology steps are fine enough.
    scale = 96 / side
    work = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    width = stroke_width(work)
    target = config.stroke_ratio * 96
    if width <= 0:
        return work, width
    ratio = width / target
    if ratio < 1 / config.stroke_tolerance:
        r = max(1, round((target - width) / 2))
        work = cv2.dilate(work, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    elif ratio > config.stroke_tolerance:
        r = max(1, round((width - target) / 2 * 0.75))
        thinned = cv2.erode(work, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        if (thinned > 0.5).sum() > 0.25 * (work > 0.5).sum():  # never erase the digit
            work = thinned
    return work, width


def fit_box(crop: np.ndarray, box: int = 20) -> np.ndarray:
    """Scale ``crop`` so its longer side is ``box`` pixels, keeping aspect (anti-aliased).

    ``crop``: ``(h, w) float32 [0, 1]`` -> ``(<=box, <=box) float32 [0, 1]``.
    """
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.clip(cv2.resize(crop, size, interpolation=interp), 0, 1).astype(np.float32)


def paste_centre(fitted: np.ndarray, size: int = 28) -> np.ndarray:
    """Paste a fitted digit at the geometric centre of a ``(size, size)`` black field."""
    out = np.zeros((size, size), np.float32)
    h, w = fitted.shape
    y, x = (size - h) // 2, (size - w) // 2
    out[y:y + h, x:x + w] = fitted
    return out


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """Intensity-weighted ``(row, col)`` centre of a 2-D image."""
    total = float(img.sum())
    if total == 0:
        return (img.shape[0] - 1) / 2, (img.shape[1] - 1) / 2
    rows, cols = np.indices(img.shape)
    return float((rows * img).sum() / total), float((cols * img).sum() / total)


def centre_by_mass(img: np.ndarray) -> np.ndarray:
    """Shift a ``(28, 28)`` image by whole pixels so its centre of mass is at (14, 14).

    Whole-pixel shifts keep strokes as crisp as MNIST's (MNIST's own centres of mass sit
    at about (14, 14) in 0-based pixel coordinates; see tests).
    """
    size = img.shape[0]
    cy, cx = centre_of_mass(img)
    dy, dx = int(round(size / 2 - cy)), int(round(size / 2 - cx))
    return np.roll(np.roll(img, dy, axis=0), dx, axis=1) if _shift_fits(img, dy, dx) else \
        _shift_clip(img, dy, dx)


def _shift_fits(img: np.ndarray, dy: int, dx: int) -> bool:
    rows, cols = np.nonzero(img)
    if rows.size == 0:
        return True
    n = img.shape[0]
    return (rows.min() + dy >= 0 and rows.max() + dy < n and
            cols.min() + dx >= 0 and cols.max() + dx < n)


def _shift_clip(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(img)
    n = img.shape[0]
    src_y, dst_y = slice(max(0, -dy), min(n, n - dy)), slice(max(0, dy), min(n, n + dy))
    src_x, dst_x = slice(max(0, -dx), min(n, n - dx)), slice(max(0, dx), min(n, n + dx))
    out[dst_y, dst_x] = img[src_y, src_x]
    return out


def normalise_crop(crop: np.ndarray, config: PreprocessConfig = DEFAULT
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A cropped digit ``(h, w) float32 [0, 1]`` -> ``(fitted, boxed, final, stroke_width)``.

    ``final`` is ``(28, 28) float32 [0, 1]`` with its brightest stroke at 1, as in MNIST.
    """
    work, width = _normalise_stroke(crop, config)
    fitted = fit_box(work, config.box)
    peak = float(fitted.max())
    if peak > 0:
        fitted = np.clip(fitted / peak, 0, 1)
    boxed = paste_centre(fitted, config.size)
    return fitted, boxed, centre_by_mass(boxed), width


# ---------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------

def _stages_for(ink: np.ndarray, labels: np.ndarray, blob: Blob,
                part: np.ndarray | None, config: PreprocessConfig) -> Stages:
    """The stages of one digit: ``blob``'s components, within ``part`` (a ``(h, w)`` bool
    mask over the blob's box) when the blob was cut into several digits."""
    region = labels[blob.y:blob.y + blob.h, blob.x:blob.x + blob.w]
    inside = np.isin(region, blob.labels)
    # Anti-aliased fringe below the component threshold belongs to the kept strokes too.
    keep = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if part is not None:
        keep &= part
        inside &= part
    crop = np.where(keep, ink[blob.y:blob.y + blob.h, blob.x:blob.x + blob.w], 0).astype(np.float32)
    # Tighten to the ink actually left (a part of a cut blob can leave empty rows).
    rows, cols = np.nonzero(crop > 0.25)
    if rows.size == 0:
        raise NoDigitError("no digit found in this part of the image")
    crop = crop[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    fitted, boxed, final, width = normalise_crop(crop, config)
    mask = np.zeros(ink.shape, bool)
    mask[blob.y:blob.y + blob.h, blob.x:blob.x + blob.w] = inside
    box = (blob.x + int(cols.min()), blob.y + int(rows.min()), crop.shape[1], crop.shape[0])
    return Stages(ink, mask, box, crop, fitted, boxed, final, width)


def preprocess(image: np.ndarray, config: PreprocessConfig = DEFAULT) -> Stages:
    """One digit in ``image`` (any polarity; gray, RGB or RGBA) -> :class:`Stages`.

    All ink other than specks is read as a single digit. Raises :class:`NoDigitError` for a
    blank image.
    """
    ink = ink_map(image, config)
    labels, blobs = _components(ink, config)
    if not blobs:
        raise NoDigitError("no digit found: the image looks blank")
    blob = blobs[0]
    for other in blobs[1:]:
        blob = _merge(blob, other)
    return _stages_for(ink, labels, blob, None, config)


Judge = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> (N, 10) probabilities


def _pieces(ink: np.ndarray, labels: np.ndarray, group: Blob, n: int,
            config: PreprocessConfig, cut: str = "thinnest") -> list[Stages]:
    out = []
    for part in _split_touching(ink, group, n, cut):
        try:
            out.append(_stages_for(ink, labels, group, part, config))
        except NoDigitError:
            continue
    return out


def _read_group(ink: np.ndarray, labels: np.ndarray, group: Blob, in_row: bool,
                config: PreprocessConfig, judge: Judge | None) -> list[Stages]:
    """One group of strokes as one digit or as several that touch.

    A digit is about 0.8 x as wide as tall, so a group holds about ``width / (0.8 x
    height)`` digits. Without a ``judge``, only a group wider than ``touching_aspect`` x its
    height is cut, into that many. But width alone cannot tell one wide digit (a flat 0, a
    7 with a long bar, a 2 with a long tail) from several that touch (a thick brush on a
    small canvas), so with a judge every group wider than ``row_aspect`` (beside other
    digits) or ``alone_aspect`` x its height is read whole and cut into each plausible
    count, in each of the ways :func:`_split_touching` knows, and the reading the judge is
    surest of (the mean of each digit's top probability) is kept; a count must beat a
    smaller one by ``split_margin`` to be chosen.
    """
    n = max(2, round(group.w / (0.8 * group.h)))
    wide = group.w > config.touching_aspect * group.h
    aspect = config.row_aspect if in_row else config.alone_aspect
    if judge is None or group.w <= aspect * group.h:
        return _pieces(ink, labels, group, n if wide else 1, config)
    counts = sorted({1, n - 1, n, n + 1} - {0})
    readings = [r for k in counts for r in ([_pieces(ink, labels, group, k, config)] if k == 1
                else [_pieces(ink, labels, group, k, config, cut) for cut in CUTS])
                if r]
    if not readings:
        return []
    sure = judge(np.stack([p.final for r in readings for p in r])).max(axis=1)
    ends = np.cumsum([0] + [len(r) for r in readings])
    best, best_sure = readings[0], sure[:ends[1]].mean()
    for r, a, b in zip(readings[1:], ends[1:], ends[2:]):
        # More digits must be read surer by a margin; the same number, just surer.
        margin = config.split_margin if len(r) > len(best) else 0.0
        if sure[a:b].mean() > best_sure + margin:
            best, best_sure = r, sure[a:b].mean()
    return best


def segment(image: np.ndarray, config: PreprocessConfig = DEFAULT,
            judge: Judge | None = None) -> list[Stages]:
    """Every digit in ``image``, left to right, each as :class:`Stages`.

    Separate components are grouped into digits by horizontal overlap; a group too wide
    for one digit is cut where its ink is thinnest (:func:`_read_group`; ``judge``, a
    classifier's ``(N, 28, 28) -> (N, 10)`` probabilities, settles the doubtful widths).
    Raises :class:`NoDigitError` when blank.
    """
    ink = ink_map(image, config)
    labels, blobs = _components(ink, config)
    if not blobs:
        raise NoDigitError("no digit found: the image looks blank")
    groups = _drop_faint(ink, labels, _group_digits(blobs, config), config)
    out = [stages for group in groups
           for stages in _read_group(ink, labels, group, len(groups) > 1, config, judge)]
    if not out:
        raise NoDigitError("no digit found: the image looks blank")
    return out


def preprocess_batch(images: list[np.ndarray], config: PreprocessConfig = DEFAULT) -> np.ndarray:
    """Many single-digit images -> ``(N, 28, 28) float32 [0, 1]`` (blank ones raise)."""
    return np.stack([preprocess(img, config).final for img in images])

"""Training-time distortions that make MNIST look like the handwriting people produce.

Real digits differ from MNIST's in slant, aspect, size left after fitting, stroke width
and wobble; each distortion here covers one of those. All functions take and return
``(N, 28, 28) float32 in [0, 1]`` and draw randomness only from the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


# ---------------------------------------------------------------------------------------
# Scanned paper
# ---------------------------------------------------------------------------------------
# Forms filled in by hand and old records reach a model through a scanner. The pen's width
# and pressure and the paper's bleed change the strokes; the scanner samples them at
# 150-300 dpi, in grey or in black and white; many collections then cut each digit from
# its form's box and stretched it to fill a square (USPS, Semeion). One function per
# effect, each with its frozen config, and :func:`scan` chaining them in the order paper
# meets scanner. Images are white ink on black, ``(H, W) float32 in [0, 1]``; every size is
# relative to the digit's height, so MNIST's digits (upscaled) and rendered pen strokes
# take the same ranges.

def _ink_height(ink: np.ndarray, level: float = 0.25) -> int:
    """Height in pixels of the ink above ``level`` (1 when there is none)."""
    rows = np.flatnonzero((ink > level).any(1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 1


@dataclass(frozen=True)
class ThicknessConfig:
    """Thick and thin pens: a felt tip or blunt pencil against a fine ballpoint."""

    thick_p: float = 0.5                      # chance the pen is broader (else finer)
    radius: tuple[float, float] = (0.015, 0.04)  # widening or narrowing of each side of a
                                               # stroke, as a fraction of the digit's height
                                               # (MNIST's strokes are 0.117 of it wide)
    keep_share: float = 0.4                   # a finer pen that would leave less than this
                                              # share of the ink is not used: never erase
                                              # the digit


def stroke_thickness(ink: np.ndarray, rng: np.random.Generator,
                     cfg: ThicknessConfig = ThicknessConfig()) -> np.ndarray:
    """The digit written with a broader (dilated) or finer (eroded) pen. ``(H, W) float32
    in [0, 1]`` in and out."""
    r = max(1, int(round(rng.uniform(*cfg.radius) * _ink_height(ink))))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    if rng.random() < cfg.thick_p:
        return cv2.dilate(ink, disk)
    thinner = cv2.erode(ink, disk)
    return thinner if (thinner > 0.5).sum() >= cfg.keep_share * (ink > 0.5).sum() else ink


@dataclass(frozen=True)
class PressureConfig:
    """How dark the ink lies: pen or pencil, pressed harder in some places than others."""

    pencil_p: float = 0.35                         # chance the digit is in pencil, not pen
    pen_level: tuple[float, float] = (0.75, 1.0)   # darkness of pen ink where pressed hardest
    pencil_level: tuple[float, float] = (0.35, 0.7)  # graphite is greyer than ink
    variation: float = 0.4                         # pressure drops by up to this share
                                                   # across the digit (light starts and ends)
    cells: int = 4                                 # the pressure field's cells across the
                                                   # digit: it changes along a stroke, not
                                                   # from pixel to pixel
    grain: float = 0.3                             # pencil's grain: its ink times 1 +- this,
                                                   # pixel by pixel


def pen_pressure(ink: np.ndarray, rng: np.random.Generator,
                 cfg: PressureConfig = PressureConfig()) -> np.ndarray:
    """The digit in pen or pencil of varying pressure: its ink scaled by a level and a
    smooth field (pencil also grainy). ``(H, W) float32 in [0, 1]`` in and out, never
    darker than the input."""
    h, w = ink.shape
    pencil = rng.random() < cfg.pencil_p
    level = rng.uniform(*(cfg.pencil_level if pencil else cfg.pen_level))
    coarse = rng.random((cfg.cells, cfg.cells)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    out = ink * level * (1 - cfg.variation * np.clip(field, 0, 1))
    if pencil:
        out = out * (1 + rng.uniform(-cfg.grain, cfg.grain, ink.shape).astype(np.float32))
    return np.clip(out, 0, 1).astype(np.float32)


@dataclass(frozen=True)
class BleedConfig:
    """Ink soaking into paper and the scanner's optics: strokes spread and soften."""

    blur: tuple[float, float] = (0.01, 0.035)  # Gaussian sigma, fraction of digit height
    gain: tuple[float, float] = (1.0, 2.0)    # the blurred ink's gain before clipping:
                                              # above 1 the ink spreads past the stroke's
                                              # edge, and small loops fill in


def ink_bleed(ink: np.ndarray, rng: np.random.Generator,
              cfg: BleedConfig = BleedConfig()) -> np.ndarray:
    """The digit blurred and spread as ink bleeds into paper. ``(H, W) float32 in [0, 1]``
    in and out."""
    sigma = max(0.3, rng.uniform(*cfg.blur) * _ink_height(ink))
    blurred = cv2.GaussianBlur(ink, (0, 0), sigma)
    return np.clip(blurred * rng.uniform(*cfg.gain), 0, 1).astype(np.float32)


@dataclass(frozen=True)
class ResampleConfig:
    """The scanner's resolution against the size the digit was written at."""

    dpi: tuple[float, float] = (150, 300)        # scanner resolution, dots per inch
    height_mm: tuple[float, float] = (3.0, 7.0)  # the digit's height on the form


MM_PER_INCH = 25.4


def resample_dpi(ink: np.ndarray, rng: np.random.Generator,
                 cfg: ResampleConfig = ResampleConfig()) -> np.ndarray:
    """The digit as a scanner samples it: shrunk (area-averaged) so its height is as many
    pixels as ``height_mm`` at ``dpi`` give (never enlarged). ``(H, W) float32 in [0, 1]``
    -> ``(h, w) float32 in [0, 1]``, ``h <= H``."""
    target = rng.uniform(*cfg.height_mm) / MM_PER_INCH * rng.uniform(*cfg.dpi)
    scale = min(1.0, target / _ink_height(ink))
    h, w = ink.shape
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return np.clip(cv2.resize(ink, size, interpolation=cv2.INTER_AREA), 0, 1).astype(np.float32)


@dataclass(frozen=True)
class LevelsConfig:
    """What the scanner keeps of each pixel: black and white, or grey."""

    binary_p: float = 0.5                        # chance of a black-and-white scan (forms,
                                                 # fax-era records, Semeion)
    threshold: tuple[float, float] = (0.2, 0.5)  # a binary scan's cut between ink and
                                                 # paper, as a share of the ink's level: a
                                                 # scanner sets it from the page's contrast
    gamma: tuple[float, float] = (0.6, 1.6)      # a grey scan's contrast curve
    ink_percentile: float = 75.0                 # the ink's level the threshold is a share
                                                 # of: this percentile of the inked pixels
    floor: float = 0.05                          # pixels above this count as inked


def scan_levels(ink: np.ndarray, rng: np.random.Generator,
                cfg: LevelsConfig = LevelsConfig()) -> np.ndarray:
    """The digit binarised at a random threshold relative to its ink's level (values 0
    and 1 only), or kept grey under a random contrast curve. ``(H, W) float32 in [0, 1]``
    in and out."""
    if rng.random() < cfg.binary_p:
        inked = ink[ink > cfg.floor]
        if inked.size == 0:
            return np.zeros_like(ink, np.float32)
        # The strokes' typical darkness, not their darkest grain of pencil.
        level = float(np.percentile(inked, cfg.ink_percentile))
        return (ink > rng.uniform(*cfg.threshold) * level).astype(np.float32)
    return np.power(np.clip(ink, 0, 1), rng.uniform(*cfg.gamma)).astype(np.float32)


@dataclass(frozen=True)
class BoxConfig:
    """How a collection cut each digit from its form's box and stored it."""

    stretch_p: float = 0.35                 # chance the digit was stretched to fill the
                                            # box both ways (aspect lost, as Semeion's),
                                            # else fitted keeping its aspect (as USPS's)
    side: tuple[int, int] = (16, 32)        # the stored box's side in pixels (USPS and
                                            # Semeion: 16)
    margin: tuple[float, float] = (0.0, 0.1)  # blank border inside the box, share of its side
    cut_p: float = 0.15                     # chance the box's edge cut off part of the
                                            # digit (written over the box's line)
    cut: tuple[float, float] = (0.03, 0.1)  # the share of the digit's height or width cut
    level: float = 0.1                      # ink above this is the digit when cropping


def form_box(ink: np.ndarray, rng: np.random.Generator, cfg: BoxConfig = BoxConfig()
             ) -> np.ndarray:
    """The digit cut from its box: cropped to its ink (sometimes with an edge cut off),
    then stretched to fill a ``side`` x ``side`` box or fitted keeping its aspect.
    ``(H, W) float32 in [0, 1]`` -> ``(side, side) float32 in [0, 1]`` (all zeros for a
    blank input)."""
    side = int(rng.integers(cfg.side[0], cfg.side[1] + 1))
    out = np.zeros((side, side), np.float32)
    rows, cols = np.nonzero(ink > cfg.level)
    if rows.size == 0:
        return out
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    if rng.random() < cfg.cut_p:
        edge = int(rng.integers(4))  # top, bottom, left, right
        axis_len = crop.shape[0] if edge < 2 else crop.shape[1]
        n = int(round(rng.uniform(*cfg.cut) * axis_len))
        if 0 < n < axis_len - 1:
            crop = [crop[n:], crop[:-n], crop[:, n:], crop[:, :-n]][edge]
    inner = max(2, int(round(side * (1 - 2 * rng.uniform(*cfg.margin)))))
    h, w = crop.shape
    if rng.random() < cfg.stretch_p:
        size = (inner, inner)
    else:
        scale = inner / max(h, w)
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    interp = cv2.INTER_AREA if max(h, w) > inner else cv2.INTER_LINEAR
    fitted = np.clip(cv2.resize(crop, size, interpolation=interp), 0, 1)
    y, x = (side - size[1]) // 2, (side - size[0]) // 2
    out[y:y + size[1], x:x + size[0]] = fitted
    return out


@dataclass(frozen=True)
class ScanConfig:
    """A digit on a scanned form: which effects are drawn, in which ranges."""

    thickness_p: float = 0.5          # chance the pen is broader or finer than the source's
    thickness: ThicknessConfig = ThicknessConfig()
    pressure: PressureConfig = PressureConfig()
    bleed_p: float = 0.6              # chance the ink bleeds and blurs
    bleed: BleedConfig = BleedConfig()
    resample: ResampleConfig = ResampleConfig()
    levels: LevelsConfig = LevelsConfig()
    box_p: float = 0.7                # chance the digit was cut from a form's box and
                                      # stored small (else handed over at scan resolution)
    box: BoxConfig = BoxConfig()
    upscale: int = 64                 # side the scan reaches the app at, upscaled smoothly
                                      # as the dev set's 16x16 scans are
    work_height: int = 80             # pixels of digit height the effects work at (MNIST's
                                      # 20-pixel digits are enlarged to it first)


SCAN = ScanConfig()


def scan(ink: np.ndarray, rng: np.random.Generator, cfg: ScanConfig = SCAN) -> np.ndarray:
    """The digit as a scanned form delivers it: pen width and pressure, bleed, the
    scanner's resolution and levels, the form's box, then upscaled as the app receives a
    small scan. ``(H, W) float32 in [0, 1]`` white ink on black, the digit about
    ``cfg.work_height`` pixels tall -> ``(upscale, upscale) float32 in [0, 1]``."""
    ink = np.asarray(ink, np.float32)
    if rng.random() < cfg.thickness_p:
        ink = stroke_thickness(ink, rng, cfg.thickness)
    ink = pen_pressure(ink, rng, cfg.pressure)
    if rng.random() < cfg.bleed_p:
        ink = ink_bleed(ink, rng, cfg.bleed)
    ink = resample_dpi(ink, rng, cfg.resample)
    ink = scan_levels(ink, rng, cfg.levels)
    if rng.random() < cfg.box_p:
        ink = form_box(ink, rng, cfg.box)
    else:  # a square page around the digit at scan resolution
        side = max(ink.shape)
        page = np.zeros((side, side), np.float32)
        y, x = (side - ink.shape[0]) // 2, (side - ink.shape[1]) // 2
        page[y:y + ink.shape[0], x:x + ink.shape[1]] = ink
        ink = page
    return np.clip(cv2.resize(ink, (cfg.upscale, cfg.upscale), interpolation=cv2.INTER_CUBIC),
                   0, 1).astype(np.float32)


def scanned_digits(images: np.ndarray, rng: np.random.Generator, rate: float,
                   cfg: ScanConfig = SCAN) -> np.ndarray:
    """A share ``rate`` of ``images`` (chosen by ``rng``) replaced by how they would look
    scanned from a form (:func:`scan`) and read back into MNIST's frame as the app's
    preprocessing fits a crop (:func:`~mnist_core.preprocess.normalise_crop`); a scan that
    lost its ink keeps the original. ``(N, 28, 28) float32 in [0, 1]`` in and out."""
    from ..preprocess import normalise_crop

    out = np.array(images, np.float32, copy=True)
    if rate <= 0:
        return out
    for i in np.flatnonzero(rng.random(len(out)) < rate):
        scale = cfg.work_height / max(_ink_height(out[i]), 1)
        big = cv2.resize(out[i], None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        scanned = scan(np.clip(big, 0, 1), rng, cfg)
        rows, cols = np.nonzero(scanned > 0.25)
        if rows.size < 4:
            continue
        crop = scanned[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        out[i] = normalise_crop(crop)[2]
    return out


@dataclass(frozen=True)
class ScanPenConfig:
    """Pen strokes written on a form, before the scan."""

    pen: tuple[float, float] = (0.06, 0.12)  # pen width, fraction of the digit's height
                                             # (MNIST's strokes: 0.117)


def ink_strokes(strokes: list[np.ndarray], rng: np.random.Generator, height: int,
                cfg: ScanPenConfig = ScanPenConfig()) -> np.ndarray:
    """Pen strokes (x/y points, any units) drawn as white ink on black, the digit
    ``height`` pixels tall: ``(height + 2m, w + 2m) float32 in [0, 1]``, m the margin."""
    pts = np.concatenate(strokes)
    lo, extent = pts.min(0), np.maximum(np.ptp(pts, axis=0), 1.0)
    scale = min(height / extent[1], 2 * height / extent[0])  # a flat stroke stays a sane width
    pen = max(1, int(round(rng.uniform(*cfg.pen) * height)))
    m = pen + 2
    w = int(np.ceil(extent[0] * scale)) + 2 * m
    img = np.zeros((int(np.ceil(extent[1] * scale)) + 2 * m, w), np.uint8)
    shift = 4  # sub-pixel precision for anti-aliased polylines
    for s in strokes:
        p = np.round(((s - lo) * scale + m) * (1 << shift)).astype(np.int32)
        if len(p) == 1:
            cv2.circle(img, tuple(int(v) for v in p[0]), pen * (1 << shift) // 2, 255, -1,
                       cv2.LINE_AA, shift)
        else:
            cv2.polylines(img, [p], False, 255, pen, cv2.LINE_AA, shift)
    return img.astype(np.float32) / 255


def render_scan(strokes: list[np.ndarray], rng: np.random.Generator, cfg: ScanConfig = SCAN,
                pen: ScanPenConfig = ScanPenConfig()) -> np.ndarray:
    """Pen strokes as a scanned form delivers them: ``(upscale, upscale) uint8``, white ink
    on black (as the dev set's scans), for the app's preprocessing."""
    ink = ink_strokes(strokes, rng, cfg.work_height, pen)
    return np.round(scan(ink, rng, cfg) * 255).astype(np.uint8)


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random distortions (0 disables one)."""

    rotate_deg: float = 12.0     # people tilt the page or the digit
    shear: float = 0.25          # handwriting slant, as x += shear * y
    scale: float = 0.12          # +-fraction; digits fill the 20x20 box unevenly
    aspect: float = 0.12         # +-fraction; narrow and wide writers
    shift_px: float = 1.5        # centre-of-mass centring is never exact
    elastic_p: float = 0.5       # probability of an elastic wobble (Simard et al. 2003)
    elastic_alpha: float = 3.0   # wobble amplitude in pixels
    elastic_sigma: float = 3.5   # wobble smoothness in pixels
    stroke_p: float = 0.5        # probability of making strokes thicker or thinner
    styles: float = 1.0          # scales the rates of writing-style variants (0 = off)
    hooked_nines: float = 0.0    # share of 9s whose stem ends in a tail curling left, as
                                 # many people write them (and MNIST's 9s rarely are); the
                                 # MLPs read such 9s as 3s without it
    scans: float = 0.0           # share of each epoch's images redrawn as scanned from a
                                 # form (:func:`scanned_digits`): forms and old records
    scan: ScanConfig = SCAN      # how those scans look


NONE = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.5, 0.0, 0.0)


def _affine(rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    angle = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    s = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
    a = 1.0 + rng.uniform(-cfg.aspect, cfg.aspect)
    sh = rng.uniform(-cfg.shear, cfg.shear)
    c, si = np.cos(angle), np.sin(angle)
    m = np.array([[c, -si], [si, c]]) @ np.array([[1.0, sh], [0.0, 1.0]]) @ np.diag([s * a, s / a])
    centre = np.array([14.0, 14.0])
    offset = centre - m @ centre + rng.uniform(-cfg.shift_px, cfg.shift_px, 2)
    return np.hstack([m, offset[:, None]]).astype(np.float32)


def augment(images: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Randomly distort each image. ``(N, 28, 28) float32 [0, 1]`` in and out."""
    images = np.asarray(images, np.float32)
    out = np.empty_like(images)
    grid_y, grid_x = np.mgrid[0:28, 0:28].astype(np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2, 2))
    for i, img in enumerate(images):
        if cfg.stroke_p and rng.random() < cfg.stroke_p:
            if rng.random() < 0.5:
                img = cv2.dilate(img, kernel)
            else:  # thinner: raise the ink threshold, keeping soft edges
                t = rng.uniform(0.2, 0.45)
                img = np.clip((img - t) / (1 - t), 0, 1)
        img = cv2.warpAffine(img, _affine(rng, cfg), (28, 28), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if cfg.elastic_p and rng.random() < cfg.elastic_p:
            dx = cv2.GaussianBlur(rng.uniform(-1, 1, (28, 28)).astype(np.float32), (0, 0), cfg.elastic_sigma)
            dy = cv2.GaussianBlur(rng.uniform(-1, 1, (28, 28)).astype(np.float32), (0, 0), cfg.elastic_sigma)
            norm = cfg.elastic_alpha / max(np.abs(dx).max(), np.abs(dy).max(), 1e-6)
            img = cv2.remap(img, grid_x + dx * norm, grid_y + dy * norm, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out[i] = img
    return np.clip(out, 0, 1)


# Writing styles MNIST (American census staff and students) barely contains but much of the
# world uses: a 1 with a flag and/or a foot, a 7 with a crossbar. Rates per digit of that
# class, before scaling by AugmentConfig.styles.
STYLE_RATES = {"flag": 0.35, "foot": 0.12, "crossbar": 0.25, "slash": 0.12}


def _redraw(img: np.ndarray, strokes: list[tuple[tuple[float, float], tuple[float, float]]]) -> np.ndarray:
    """Add straight strokes (28x28 coordinates, x/y) at 4x resolution, then re-fit the digit
    into MNIST's 20x20 box centred by mass, as the preprocessing would."""
    from ..preprocess import normalise_crop

    scale = 4
    big = cv2.resize(img, (28 * scale, 28 * scale), interpolation=cv2.INTER_LINEAR)
    width = max(6, int(round(2.2 * scale)))
    shift = 3
    for (x0, y0), (x1, y1) in strokes:
        p0 = (int(round(x0 * scale * 8)), int(round(y0 * scale * 8)))
        p1 = (int(round(x1 * scale * 8)), int(round(y1 * scale * 8)))
        cv2.line(big, p0, p1, 1.0, width, cv2.LINE_AA, shift)
    rows, cols = np.nonzero(big > 0.25)
    crop = big[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return normalise_crop(np.clip(crop, 0, 1))[2]


def style_variants(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                   rate: float = 1.0, hooked_nines: float = 0.0) -> np.ndarray:
    """Give some 1s a flag or a foot, some 7s a crossbar, some 0s a slash (Ø) and a share
    ``hooked_nines`` of the 9s a hooked tail. ``(N, 28, 28) float32`` in/out."""
    out = np.array(images, np.float32, copy=True)
    if rate <= 0:
        return out
    for i in np.flatnonzero((labels == 1) | (labels == 7)):
        img = out[i]
        ys, xs = np.nonzero(img > 0.5)
        if ys.size < 10:
            continue
        y0, y1 = ys.min(), ys.max()
        h = float(y1 - y0)
        top_x = float(xs[ys <= y0 + 1].mean())
        strokes = []
        if labels[i] == 1:
            if rng.random() < STYLE_RATES["flag"] * rate:
                length = h * rng.uniform(0.2, 0.8)
                angle = np.deg2rad(rng.uniform(30, 70))  # from straight down, towards the left
                strokes.append(((top_x, y0), (top_x - length * np.sin(angle), y0 + length * np.cos(angle))))
            if rng.random() < STYLE_RATES["foot"] * rate:
                bottom_x = float(xs[ys >= y1 - 1].mean())
                half = h * rng.uniform(0.15, 0.3)
                strokes.append(((bottom_x - half, y1), (bottom_x + half, y1)))
        elif rng.random() < STYLE_RATES["crossbar"] * rate:
            y = y0 + h * rng.uniform(0.45, 0.6)
            row = np.nonzero(img[int(round(y))] > 0.5)[0]
            if row.size:
                half = h * rng.uniform(0.12, 0.22)
                centre = float(row.mean())
                strokes.append(((centre - half, y), (centre + half, y)))
        if strokes:
            out[i] = _redraw(img, strokes)
    # Passes of their own, after the one above, so its random draws stay as they were.
    for i in np.flatnonzero(labels == 0):
        if rng.random() < STYLE_RATES["slash"] * rate:
            out[i] = _slash(out[i], rng)
    if hooked_nines > 0:
        for i in np.flatnonzero(labels == 9):
            if rng.random() < hooked_nines:
                out[i] = _hook(out[i], rng)
    return out


def _slash(img: np.ndarray, rng: np.random.Generator,
           overshoot: tuple[float, float] = (0.0, 0.2)) -> np.ndarray:
    """A 0 with a slash from below its bottom left to above its top right (Ø)."""
    ys, xs = np.nonzero(img > 0.5)
    if ys.size < 10:
        return img
    x0, x1, y0, y1 = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    a, b = rng.uniform(*overshoot, 2) * 0.5
    w, h = x1 - x0, y1 - y0
    return _redraw(img, [((x0 - a * w, y1 + a * h), (x1 + b * w, y0 - b * h))])


def _hook(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 9 whose stem ends in a tail turning left and up, like a J's."""
    ys, xs = np.nonzero(img > 0.5)
    if ys.size < 10:
        return img
    y1, h = float(ys.max()), float(ys.max() - ys.min())
    x1 = float(xs[ys >= y1 - 1].mean())
    length = h * rng.uniform(0.15, 0.35)
    angle = np.deg2rad(rng.uniform(5, 40))  # above the horizontal, towards the left
    return _redraw(img, [((x1, y1), (x1 - length * np.cos(angle), y1 - length * np.sin(angle)))])


# ---------------------------------------------------------------------------------------
# Writing styles on pen strokes
# ---------------------------------------------------------------------------------------
# The same styles (and more) drawn into real writers' strokes before they are rendered, so
# they come out in the renderer's own brush and ink. Strokes: lists of ``(n, 2) float32``
# x/y points, y down, any units; each function returns new strokes and leaves its input
# alone. Geometry is relative to the digit's box, so units do not matter.

def _box(strokes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    pts = np.concatenate(strokes)
    lo = pts.min(0)
    return lo, np.maximum(pts.max(0) - lo, 1.0)


def _segment(p0, p1, n: int = 12) -> np.ndarray:
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    return (np.asarray(p0, np.float32) * (1 - t) + np.asarray(p1, np.float32) * t).astype(np.float32)


def slashed_zero(strokes, rng, overshoot: tuple[float, float] = (0.0, 0.2)):
    """A 0 with a slash from below its bottom left to above its top right (Ø)."""
    lo, size = _box(strokes)
    a, b = rng.uniform(*overshoot, 2)
    start = lo + size * np.array([-a * 0.5, 1 + a * 0.5])
    end = lo + size * np.array([1 + b * 0.5, -b * 0.5])
    return list(strokes) + [_segment(start, end)]


def crossed_seven(strokes, rng, height: tuple[float, float] = (0.45, 0.62),
                  half_width: tuple[float, float] = (0.2, 0.35)):
    """A 7 with a bar across its stem, about half way down."""
    lo, size = _box(strokes)
    y = lo[1] + size[1] * rng.uniform(*height)
    pts = np.concatenate(strokes)
    near = np.abs(pts[:, 1] - y) < 0.08 * size[1]
    x = float(pts[near, 0].mean()) if near.any() else float(lo[0] + size[0] / 2)
    half = size[0] * rng.uniform(*half_width)
    return list(strokes) + [_segment((x - half, y), (x + half, y))]


def flagged_one(strokes, rng, length: tuple[float, float] = (0.2, 0.5),
                angle_deg: tuple[float, float] = (30, 70), foot_p: float = 0.3,
                foot_half: tuple[float, float] = (0.15, 0.3)):
    """A 1 with a flag from its top down to the left (as much of Europe writes it), and
    with chance ``foot_p`` a foot along its base."""
    lo, size = _box(strokes)
    pts = np.concatenate(strokes)
    top = pts[pts[:, 1].argmin()]
    height = size[1]
    a = np.deg2rad(rng.uniform(*angle_deg))
    n = height * rng.uniform(*length)
    out = [_segment(top + n * np.array([-np.sin(a), np.cos(a)]), top)] + list(strokes)
    if rng.random() < foot_p:
        bottom = pts[pts[:, 1].argmax()]
        half = height * rng.uniform(*foot_half)
        out.append(_segment(bottom - [half, 0], bottom + [half, 0]))
    return out


def looped_two(strokes, rng, radius: tuple[float, float] = (0.08, 0.16)):
    """A 2 whose stroke loops once where the diagonal meets the base (like a script ℓ)."""
    lo, size = _box(strokes)
    k = max(range(len(strokes)), key=lambda j: len(strokes[j]))
    s = strokes[k]
    rel = (s - lo) / size
    corner = int(np.argmax(rel[:, 1] - rel[:, 0]))  # lowest-leftmost point of the stroke
    r = size[1] * rng.uniform(*radius)
    centre = s[corner] + np.array([0.0, -r], np.float32)
    theta = np.deg2rad(np.linspace(90, 450, 24))[1:-1]
    loop = (centre + r * np.stack([np.cos(theta), np.sin(theta)], 1)).astype(np.float32)
    new = np.concatenate([s[:corner + 1], loop, s[corner:]])
    return [new if j == k else t for j, t in enumerate(strokes)]


def curled_nine(strokes, rng, radius: tuple[float, float] = (0.12, 0.25),
                sweep_deg: tuple[float, float] = (120, 220)):
    """A 9 whose stem ends in a tail curling left (and sometimes up again)."""
    lo, size = _box(strokes)
    k = max(range(len(strokes)), key=lambda j: strokes[j][:, 1].max())
    s = strokes[k]
    end = int(np.argmax(s[:, 1]))  # the stem's foot
    r = size[0] * rng.uniform(*radius)
    centre = s[end] + np.array([-r, 0.0], np.float32)
    theta = np.deg2rad(np.linspace(0, rng.uniform(*sweep_deg), 16))
    curl = (centre + r * np.stack([np.cos(theta), np.sin(theta)], 1)).astype(np.float32)
    new = np.concatenate([s[:end + 1], curl[1:]])
    return [new if j == k else t for j, t in enumerate(strokes)]


def open_four(strokes, rng, lift: tuple[float, float] = (0.0, 0.1)):
    """A 4 written in one stroke with an open top: down the left arm, along the bar to the
    stem, up the stem and back down it. Built from a 4 written as arm-and-bar plus stem;
    other 4s are returned unchanged."""
    if len(strokes) != 2:
        return list(strokes)
    arm, stem = strokes
    if np.ptp(stem[:, 1]) < 2 * np.ptp(stem[:, 0]):
        return list(strokes)  # the second stroke is not a stem
    lo, size = _box(strokes)
    stem = stem if stem[0, 1] <= stem[-1, 1] else stem[::-1]
    x = float(np.median(stem[:, 0]))
    bottom = int(np.argmax(arm[:, 1]))  # where the arm turns into the bar
    past = np.flatnonzero(arm[bottom:, 0] >= x)
    if past.size == 0:
        return list(strokes)
    bar_end = bottom + int(past[0])
    top = stem[0] - np.array([0.0, size[1] * rng.uniform(*lift)], np.float32)
    corner = np.array([x, arm[bar_end, 1]], np.float32)
    return [np.concatenate([arm[:bar_end], corner[None], _segment(corner, top)[1:],
                            _segment(top, stem[-1])[1:]])]


# Each style: the digit it applies to. One place, so the contact sheet, the tests and the
# renderer of training writers (:mod:`.writers`) see the same list.
STROKE_STYLES = {
    "slashed_zero": (0, slashed_zero),
    "flagged_one": (1, flagged_one),
    "looped_two": (2, looped_two),
    "open_four": (4, open_four),
    "crossed_seven": (7, crossed_seven),
    "curled_nine": (9, curled_nine),
}


def apply_stroke_style(strokes: list[np.ndarray], label: int, rng: np.random.Generator):
    """``strokes`` with one of the styles for ``label`` drawn in (chosen by ``rng``), or
    unchanged when ``label`` has none."""
    styles = [fn for digit, fn in STROKE_STYLES.values() if digit == label]
    if not styles:
        return strokes
    return styles[int(rng.integers(len(styles)))](strokes, rng)


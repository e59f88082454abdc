"""Real handwriting that is not MNIST, turned into the inputs the app really gets.

The development set (``../shared/data/handwriting-dev``) holds Chars74K pen strokes and
USPS/Semeion scans. Strokes are rendered two ways, both seeded: as a person drawing on the
app's 280x280 canvas (white brush on a transparent background, random brush width, size
and position), and as a photo of ink on paper (dark ink, uneven light, noise, JPEG): filling the frame,
lying on a darker desk, or written on ruled or squared paper.
Scans are upscaled as a scanner at a higher resolution would deliver them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEFAULT_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "handwriting-dev"


@dataclass(frozen=True)
class CanvasStyle:
    size: int = 280                          # the app's canvas side in pixels
    brush: tuple[float, float] = (12, 28)    # brush width range, pixels
    height: tuple[float, float] = (0.40, 0.85)  # digit height as a fraction of the canvas


@dataclass(frozen=True)
class PhotoStyle:
    size: tuple[int, int] = (360, 480)       # photo side range, pixels
    pen: tuple[float, float] = (0.025, 0.07)  # pen width as a fraction of the digit height
    height: tuple[float, float] = (0.35, 0.7)  # digit height as a fraction of the photo
    noise: tuple[float, float] = (2, 10)     # sensor noise std, grey levels
    jpeg: tuple[int, int] = (45, 85)         # JPEG quality range


def load_strokes(path: str | Path) -> list[tuple[int, list[np.ndarray]]]:
    """Chars74K strokes: list of ``(label, [ (n_i, 2) float32 x,y points ... ])``."""
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                out.append((int(rec["label"]), [np.asarray(s, np.float32).reshape(-1, 2)
                                                for s in rec["strokes"] if len(s)]))
    return out


def load_scans(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """USPS/Semeion ``.npz``: ``(N, 16, 16) uint8`` white on black and ``(N,)`` labels."""
    with np.load(path, allow_pickle=False) as f:
        return f["images"].astype(np.uint8), f["labels"].astype(np.int64)


def upscale_scan(image: np.ndarray, side: int = 64) -> np.ndarray:
    """A ``(16, 16)`` scan at ``side`` pixels, smoothly (``(side, side) uint8``)."""
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)


def _place(strokes: list[np.ndarray], height: float, width_limit: float, rng, size: int,
           margin: float) -> list[np.ndarray]:
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    extent = np.maximum(hi - lo, 1.0)
    scale = min(height / extent[1], width_limit / extent[0])
    w, h = extent * scale
    x0 = rng.uniform(margin, max(margin, size - margin - w))
    y0 = rng.uniform(margin, max(margin, size - margin - h))
    return [(s - lo) * scale + np.array([x0, y0], np.float32) for s in strokes]


def _draw(canvas: np.ndarray, strokes: list[np.ndarray], width: float, colour) -> None:
    shift = 4  # sub-pixel precision for anti-aliased polylines
    thick = max(1, int(round(width)))
    for s in strokes:
        p = np.round(s * (1 << shift)).astype(np.int32)
        if len(p) == 1:
            cv2.circle(canvas, tuple(p[0]), thick * (1 << shift) // 2, colour, -1, cv2.LINE_AA, shift)
        else:
            cv2.polylines(canvas, [p], False, colour, thick, cv2.LINE_AA, shift)


def render_canvas(strokes: list[np.ndarray], rng: np.random.Generator,
                  style: CanvasStyle = CanvasStyle()) -> np.ndarray:
    """Strokes as drawn on the app's canvas: ``(280, 280, 4) uint8`` RGBA, white ink on a
    transparent background (what streamlit-drawable-canvas returns)."""
    brush = rng.uniform(*style.brush)
    height = rng.uniform(*style.height) * style.size
    placed = _place(strokes, height, style.size - brush - 4, rng, style.size, brush / 2 + 2)
    # The canvas paints white and anti-aliases through alpha only, so draw the coverage.
    alpha = np.zeros((style.size, style.size), np.uint8)
    _draw(alpha, placed, brush, 255)
    canvas = np.zeros((style.size, style.size, 4), np.uint8)
    canvas[..., :3] = np.where(alpha[..., None] > 0, 255, 0)
    canvas[..., 3] = alpha
    return canvas


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB as it comes back from a JPEG saved at ``quality``."""
    _, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def render_photo(strokes: list[np.ndarray], rng: np.random.Generator,
                 style: PhotoStyle = PhotoStyle()) -> np.ndarray:
    """Strokes as a phone photo of ink on paper: ``(H, W, 3) uint8`` RGB after JPEG."""
    h = int(rng.integers(*style.size))
    w = int(rng.integers(*style.size))
    height = rng.uniform(*style.height) * min(h, w)
    pen = max(2.0, rng.uniform(*style.pen) * height)
    paper = np.array(rng.uniform(190, 250, 3), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Uneven light: a tilt plus a soft shadow blob.
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    light = 1 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)
    cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.3, 0.8) * max(h, w)
    light -= rng.uniform(0.0, 0.3) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    img = np.ones((h, w, 3), np.float32) * paper
    ink_mask = np.zeros((h, w), np.uint8)
    placed = _place(strokes, height, min(h, w) * 0.9 - pen, rng, min(h, w), pen + 4)
    _draw(ink_mask, placed, pen, 255)
    ink_mask = cv2.GaussianBlur(ink_mask.astype(np.float32) / 255, (0, 0), rng.uniform(0.5, 1.5))
    ink = np.array(rng.uniform(10, 70, 3), np.float32)  # black-ish, sometimes blue-ish
    img = img * (1 - ink_mask[..., None]) + ink * ink_mask[..., None]
    img = img * light[..., None] + rng.normal(0, rng.uniform(*style.noise), img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return _jpeg(img, int(rng.integers(*style.jpeg)))


def render_desk_photo(strokes: list[np.ndarray], rng: np.random.Generator,
                      style: PhotoStyle = PhotoStyle()) -> np.ndarray:
    """A photo of the note lying on a darker desk: the sheet (as :func:`render_photo`)
    slightly turned, filling 55-80% of the frame's side, desk visible around it.
    ``(H, W, 3) uint8`` RGB after JPEG."""
    sheet = render_photo(strokes, rng, style)
    h, w = sheet.shape[:2]
    fill = rng.uniform(0.55, 0.8)
    big_h, big_w = int(h / fill), int(w / fill)
    desk_colour = rng.uniform(20, 110, 3)
    angle = rng.uniform(-10, 10)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += [rng.uniform(0, big_w - w), rng.uniform(0, big_h - h)]
    photo = cv2.warpAffine(sheet, m, (big_w, big_h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(desk_colour))
    photo = np.clip(photo + rng.normal(0, 3, photo.shape), 0, 255).astype(np.uint8)
    return _jpeg(photo, 80)


def render_ruled_photo(strokes: list[np.ndarray], rng: np.random.Generator,
                       style: PhotoStyle = PhotoStyle()) -> np.ndarray:
    """A photo of the digit written on ruled (half the time squared) notebook paper: blue or
    grey rules every 22-40 px under the ink. ``(H, W, 3) uint8`` RGB after JPEG."""
    photo = render_photo(strokes, rng, style).astype(np.float32)
    h, w = photo.shape[:2]
    pitch = rng.uniform(22, 40)
    colour = np.array([90, 110, 200] if rng.random() < 0.5 else [120, 120, 120], np.float32)
    strength = rng.uniform(0.5, 1.0)
    rules = np.zeros((h, w), np.float32)
    for v in np.arange(rng.uniform(0, pitch), h, pitch):
        cv2.line(rules, (0, int(v)), (w - 1, int(v)), 1.0, 2)
    if rng.random() < 0.5:
        for v in np.arange(rng.uniform(0, pitch), w, pitch):
            cv2.line(rules, (int(v), 0), (int(v), h - 1), 1.0, 2)
    # Printed under the ink: a rule darkens the paper by its colour, the ink stays ink.
    tint = 1 - strength * rules[..., None] * (1 - colour / 255)
    photo = np.clip(photo * tint, 0, 255).astype(np.uint8)
    return _jpeg(photo, 85)


def write_in_a_row(digits: list[list[np.ndarray]], rng: np.random.Generator) -> list[np.ndarray]:
    """Several digits' strokes written one after another, as a person writes "2026".

    ``digits``: each digit's strokes (as :func:`load_strokes` gives them). Each digit is
    scaled to about one height (+-10%), the next starts 15-45% of that height to the right
    of the last one's right edge, and the baseline wanders (+-6%). Returns all strokes in
    one frame (units arbitrary), ready for :func:`render_canvas` or :func:`render_photo`,
    which scale the whole row into place.
    """
    out, x = [], 0.0
    for strokes in digits:
        pts = np.concatenate(strokes)
        lo, extent = pts.min(0), np.maximum(np.ptp(pts, axis=0), 1.0)
        height = 100 * rng.uniform(0.9, 1.1)
        scale = height / extent[1]
        offset = np.array([x, 100 - height + rng.uniform(-6, 6)], np.float32)
        out += [((st - lo) * scale + offset).astype(np.float32) for st in strokes]
        x += extent[0] * scale + rng.uniform(15, 45)
    return out


# How the rows of digits are written: smaller digits than one alone fills the canvas or
# the photo with (a row must fit its width), brushes no wider than the app's default.
ROW_CANVAS = CanvasStyle(brush=(8, 22), height=(0.2, 0.45))
ROW_PHOTO = PhotoStyle(height=(0.15, 0.35))


def sequence_sets(directory: str | Path = DEFAULT_DIR, seed: int = 0, n: int = 200,
                  lengths: tuple[int, int] = (2, 5)):
    """Yield ``(set_name, images, label_strings)``: rows of 2-5 Chars74K digits drawn on the
    canvas and photographed on paper, ``n`` of each, seeded. Digits are drawn at random
    from the 550 (writers mixed, as in a classroom demo)."""
    strokes = load_strokes(Path(directory) / "chars74k_digits_strokes.jsonl")
    rng = np.random.default_rng(seed + 10)
    rows = [rng.choice(len(strokes), rng.integers(lengths[0], lengths[1] + 1)) for _ in range(n)]
    labels = ["".join(str(strokes[i][0]) for i in row) for row in rows]
    digits = [[strokes[i][1] for i in row] for row in rows]
    rng = np.random.default_rng(seed + 11)
    yield "row-canvas", [render_canvas(write_in_a_row(d, rng), rng, ROW_CANVAS) for d in digits], labels
    rng = np.random.default_rng(seed + 12)
    yield "row-photo", [render_photo(write_in_a_row(d, rng), rng, ROW_PHOTO) for d in digits], labels


def dev_sets(directory: str | Path = DEFAULT_DIR, seed: int = 0):
    """Yield ``(set_name, images, labels)`` for every style of the development set.

    Images are lists of raw inputs (canvas RGBA, photo RGB, upscaled scans), exactly what
    the app and ``predict`` would be given.
    """
    directory = Path(directory)
    strokes = load_strokes(directory / "chars74k_digits_strokes.jsonl")
    labels = np.array([lab for lab, _ in strokes])
    rng = np.random.default_rng(seed)
    yield "chars74k-canvas", [render_canvas(s, rng) for _, s in strokes], labels
    rng = np.random.default_rng(seed + 1)
    yield "chars74k-photo", [render_photo(s, rng) for _, s in strokes], labels
    rng = np.random.default_rng(seed + 2)
    yield "chars74k-desk", [render_desk_photo(s, rng) for _, s in strokes], labels
    rng = np.random.default_rng(seed + 3)
    yield "chars74k-ruled", [render_ruled_photo(s, rng) for _, s in strokes], labels
    for name in ("usps_test", "semeion"):
        x, y = load_scans(directory / f"{name}.npz")
        yield name.split("_")[0], [upscale_scan(img) for img in x], y

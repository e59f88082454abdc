"""Not a digit: flag inputs no model should read as a digit (noise, a page of text,
letters, scribbles, shapes, a dot on a blank page).

Every model answers *some* digit for any input, often with high confidence. Three cheap
signals, each with a named threshold (:class:`NoveltyConfig`), say when that answer should
not be trusted:

* **ink**: preprocessing fits whatever it found into MNIST's 20x20 box, so a dot or a
  blot becomes a filled disc and noise a grey square: far more ink than a pen stroke
  leaves (MNIST digits: mean intensity 0.03-0.30 in 28x28).
* **blot**: a pen stroke is narrow once preprocessing has brought it to MNIST's width,
  while a dot fitted into the box, a page of text or noise turn into a solid patch: the
  largest distance from an ink pixel to the background (half the widest stroke) tells
  them apart (MNIST validation: at most 6.2 px; a dot: 6.6-7).
* **doubt**: the models' answers, after their temperatures (:mod:`mnist_core.calibration`),
  are both unsure (the mean of each model's top probability is low) and split. Either
  alone happens on hard real digits; together they mark inputs outside what the models
  learned.

Thresholds were chosen on MNIST's validation split and synthetic non-digits
(:func:`non_digits`), never on the handwriting dev set, which
``benchmarks/not_a_digit.py`` only measures (``benchmarks/NOT_A_DIGIT.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class NoveltyConfig:
    # MNIST validation (5,000 digits): ink 0.026-0.299, half-width at most 6.2 px.
    max_ink: float = 0.36          # mean intensity of the 28x28 input above which it is a blot
    ink_level: float = 0.3         # a pixel this bright is ink, when measuring stroke width
    max_half_width: float = 6.4    # px from the ink's deepest pixel to the background
    # With the shipped models' temperatures, 0.1% of MNIST validation digits (2,000 read
    # as the app reads them) fall under both; a looser 0.6 doubled that.
    min_confidence: float = 0.55   # mean over models of the top probability below which...
    max_agreement: float = 0.5     # ...and at most this share of models on the top answer: doubt


DEFAULT = NoveltyConfig()


@dataclass(frozen=True)
class Verdict:
    """Why an input is (or is not) taken for a digit; ``reasons`` is empty for a digit."""

    ink: float | None          # mean intensity of the model input (None: no image given)
    half_width: float | None   # px from its deepest ink pixel to the background
    confidence: float          # mean over models of each one's top probability
    agreement: float           # share of models that name the most named digit
    reasons: tuple[str, ...]   # what gave it away, in words (empty: looks like a digit)

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


def half_width(image: np.ndarray, *, level: float = DEFAULT.ink_level) -> float:
    """Half the widest stroke of a ``(28, 28) float32 in [0, 1]`` model input, in pixels:
    the largest Euclidean distance from a pixel at ``level`` or brighter to the nearest
    darker one (or the border); 0 for an empty image."""
    mask = np.pad((np.asarray(image, np.float32) >= level).astype(np.uint8), 1)
    return float(cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_5).max())


def doubt(probs: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """``(confidence, agreement)`` of the models' ``(10,)`` probabilities: the mean of
    each model's top probability, and the share of models naming the most named digit."""
    tops = np.array([int(np.argmax(p)) for p in probs.values()])
    confidence = float(np.mean([float(np.max(p)) for p in probs.values()]))
    agreement = float(np.bincount(tops).max() / len(tops)) if len(tops) else 1.0
    return confidence, agreement


def check(probs: Mapping[str, np.ndarray], image: np.ndarray | None = None,
          cfg: NoveltyConfig = DEFAULT) -> Verdict:
    """Whether the input the models read (``image``: its ``(28, 28) float32 in [0, 1]``
    model input, when at hand) and their answers (``probs``: model name -> ``(10,)``) look
    like a digit. Without ``image`` only the models' doubt is judged."""
    confidence, agreement = doubt(probs)
    reasons = []
    ink = width = None
    if image is not None:
        x = np.asarray(image, np.float32).reshape(28, 28)
        ink = float(x.mean())
        width = half_width(x, level=cfg.ink_level)
        if ink > cfg.max_ink:
            reasons.append("far more ink than a pen stroke leaves")
        if width > cfg.max_half_width:
            reasons.append("a solid patch, not pen strokes")
    if len(probs) > 1 and confidence < cfg.min_confidence and agreement <= cfg.max_agreement:
        reasons.append("the models are unsure and disagree")
    return Verdict(ink, width, confidence, agreement, tuple(reasons))


def check_batch(probs: Mapping[str, np.ndarray], images: np.ndarray | None = None,
                cfg: NoveltyConfig = DEFAULT) -> np.ndarray:
    """:func:`check` for ``N`` inputs at once: ``probs`` model name -> ``(N, 10)``,
    ``images`` ``(N, 28, 28)``; returns ``(N,) bool``, True where flagged."""
    n = len(next(iter(probs.values())))
    return np.array([check({k: v[i] for k, v in probs.items()},
                           None if images is None else images[i], cfg).flagged
                     for i in range(n)], bool)


# ---------------------------------------------------------------------------------------
# Non-digits, to choose thresholds on and to measure
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NonDigitStyle:
    canvas: int = 280                        # the app's canvas side, pixels
    brush: tuple[int, int] = (12, 28)        # canvas brush range, as handwriting.CanvasStyle
    page: tuple[int, int] = (360, 480)       # photo side range, pixels
    text_scale: tuple[float, float] = (0.5, 1.1)   # cv2.putText font scale of printed text
    noise_std: float = 6.0                   # sensor noise on photos, grey levels


NON_DIGIT_KINDS = ("noise", "text page", "letters", "scribble", "shape", "dot")
# Letters that are not also written as digits (O/0, I/1, S/5, Z/2, B/8, G/6, q/9 are left out).
LETTERS = "ACEFHKLMNPRTUVWXYacefhkmnrtuvwxy"
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
          cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)
_WORDS = ("the quick brown fox jumps over the lazy dog", "Chapter Three", "page 17 of 240",
          "lorem ipsum dolor sit amet", "MNIST Studio reads digits", "Invoice total: 42.50",
          "Kind regards,", "and then she said")


def _canvas(strokes_drawn) -> np.ndarray:
    """An RGBA canvas drawing (white on transparent) from a function that paints alpha."""
    alpha = np.zeros((NonDigitStyle.canvas, NonDigitStyle.canvas), np.uint8)
    strokes_drawn(alpha)
    out = np.zeros(alpha.shape + (4,), np.uint8)
    out[..., :3] = np.where(alpha[..., None] > 0, 255, 0)
    out[..., 3] = alpha
    return out


def _photo(rng: np.random.Generator, paint, style: NonDigitStyle) -> np.ndarray:
    """An RGB photo of dark marks on light paper with noise: ``paint(gray)`` draws."""
    h, w = (int(rng.integers(*style.page)) for _ in range(2))
    gray = np.full((h, w), int(rng.integers(200, 246)), np.uint8)
    paint(gray, h, w)
    noisy = gray.astype(np.float32) + rng.normal(0, style.noise_std, gray.shape)
    return np.repeat(np.clip(noisy, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def non_digit(kind: str, rng: np.random.Generator, style: NonDigitStyle = NonDigitStyle()
              ) -> tuple[np.ndarray, bool]:
    """One synthetic non-digit of ``kind`` (one of :data:`NON_DIGIT_KINDS`) as the app
    would get it: ``(image, canvas)``, ``canvas`` True for an RGBA canvas drawing (white on
    transparent), False for an RGB photo."""
    side = style.canvas
    brush = int(rng.integers(*style.brush))
    if kind == "noise":
        h, w = (int(rng.integers(*style.page)) for _ in range(2))
        grain = int(rng.integers(1, 6))
        small = rng.integers(0, 256, (h // grain + 1, w // grain + 1), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        return np.repeat(img[..., None], 3, axis=2), False
    if kind == "text page":
        def paint(gray, h, w):
            scale = rng.uniform(*style.text_scale)
            y = int(rng.integers(20, 50))
            while y < h - 10:
                words = " ".join(rng.choice(_WORDS, 2))
                cv2.putText(gray, words, (int(rng.integers(5, 30)), y),
                            _FONTS[int(rng.integers(4))], scale, int(rng.integers(10, 70)),
                            max(1, int(round(scale * 2))), cv2.LINE_AA)
                y += int(30 * scale + rng.integers(6, 20))
        return _photo(rng, paint, style), False
    if kind == "letters":
        letter = str(rng.choice(list(LETTERS)))
        font = _FONTS[int(rng.integers(len(_FONTS)))]

        def draw(alpha):
            scale = rng.uniform(4.0, 7.0)
            (tw, th), _ = cv2.getTextSize(letter, font, scale, brush // 2)
            x = int(rng.integers(5, max(6, side - tw - 5)))
            y = int(rng.integers(th + 5, max(th + 6, side - 5)))
            cv2.putText(alpha, letter, (x, y), font, scale, 255, max(2, brush // 2), cv2.LINE_AA)
        return _canvas(draw), True
    if kind == "scribble":
        def draw(alpha):
            pts = rng.uniform(30, side - 30, (int(rng.integers(8, 25)), 2)).astype(np.int32)
            cv2.polylines(alpha, [pts.reshape(-1, 1, 2)], False, 255, brush, cv2.LINE_AA)
        return _canvas(draw), True
    if kind == "shape":
        def draw(alpha):
            c = rng.uniform(100, 180, 2)
            r = rng.uniform(50, 100)
            sides = int(rng.choice([3, 4, 5, 6]))
            if rng.random() < 0.3:   # a star
                angles = np.linspace(0, 2 * np.pi, 2 * sides, endpoint=False)
                radii = np.where(np.arange(2 * sides) % 2 == 0, r, r * 0.45)
            else:
                angles = np.linspace(0, 2 * np.pi, sides, endpoint=False)
                radii = np.full(sides, r)
            angles = angles + rng.uniform(0, np.pi)
            pts = np.stack([c[0] + radii * np.cos(angles), c[1] + radii * np.sin(angles)], 1)
            cv2.polylines(alpha, [pts.astype(np.int32).reshape(-1, 1, 2)], True, 255, brush,
                          cv2.LINE_AA)
        return _canvas(draw), True
    if kind == "dot":
        def draw(alpha):
            cv2.circle(alpha, tuple(int(v) for v in rng.integers(40, side - 40, 2)),
                       max(2, brush // 2), 255, -1, cv2.LINE_AA)
        return _canvas(draw), True
    raise ValueError(f"unknown kind of non-digit {kind!r}; known: {', '.join(NON_DIGIT_KINDS)}")


def non_digits(n_per_kind: int, seed: int = 0, kinds: tuple[str, ...] = NON_DIGIT_KINDS
               ) -> list[tuple[str, np.ndarray, bool]]:
    """``n_per_kind`` of each kind, seeded: ``[(kind, image, canvas), ...]``."""
    rng = np.random.default_rng(seed)
    return [(kind, *non_digit(kind, rng)) for kind in kinds for _ in range(n_per_kind)]

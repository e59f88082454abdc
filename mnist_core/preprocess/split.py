"""Splitting an ink map into digits: connected components, grouped into digits by how
they overlap, faint groups dropped, groups too wide for one digit cut apart (where a
classifier, the judge, may settle how many digits a group holds), and each digit cut out
and normalised into :class:`~mnist_core.preprocess.common.Stages`.

Ink maps are ``(h, w) float32 [0, 1]``, white ink on black; boxes are ``(x, y, w, h)`` in
the ink map's pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .common import INK_LEVEL, NoDigitError, Stages
from .geometry import DEFAULT_GEOMETRY, GeometryConfig, normalise_crop

Judge = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> (N, 10) probabilities

CUTS = ("thinnest", "waist", "seam")  # the ways _split_touching can cut


@dataclass(frozen=True)
class SplitConfig:
    """How ink is split into digits."""

    connectivity: int = 8           # diagonal neighbours join: a thin slanted stroke stays one
    min_ink_frac: float = 0.0003    # a digit covers at least this fraction of the image
    speck_frac: float = 0.06        # components smaller than this x the largest are specks
    fringe: int = 1                 # px: the anti-aliased fringe around kept strokes, below
                                    # the ink level, is kept with them
    multi_gap: float = 0.35         # components overlapping less than this are separate digits
    tall_pair: float = 0.6          # two components this close in height are each a digit...
    nested: float = 0.7             # ...unless one lies this much within the other's columns
    fragment: float = 0.45          # a group shorter than this x the tallest is a fragment (a
                                    # dot, a flag), joined to its nearest neighbour
    faint: float = 0.5              # beside bolder ink, a group fainter than this is no digit
    strength: float = 90.0          # percentile of a group's ink taken as its strength: its
                                    # stroke cores, not its anti-aliased edges
    digit_aspect: float = 0.8       # a digit is about this x as wide as tall, so a group holds
                                    # about width / (this x height) digits
    touching_aspect: float = 1.55   # a blob wider than this x its height is two digits or more
    row_aspect: float = 0.75        # wider than this x its height beside other digits, or
    alone_aspect: float = 1.2       # than this alone, a blob may be two digits: a judge decides
    split_margin: float = 0.15      # how much surer the judge must be of the split reading
    cut_window: float = 0.35        # a cut lies within this x a digit's width of where an even
                                    # split would put it
    smooth: int = 3                 # px: the cut profile's moving average, so one ragged
                                    # column does not decide
    seam_pull: float = 1e-3         # ink per column: a faint pull towards the window's middle
                                    # that breaks ties in blank gaps, far below any stroke


DEFAULT_SPLIT = SplitConfig()


@dataclass(frozen=True)
class Blob:
    """A group of connected components that forms one digit: box and pixel labels."""

    x: int
    y: int
    w: int
    h: int
    labels: tuple[int, ...]


def _components(ink: np.ndarray, config: SplitConfig = DEFAULT_SPLIT
                ) -> tuple[np.ndarray, list[Blob]]:
    """Label connected ink; drop specks. Returns the ``(h, w) int32`` label image and one
    Blob per component kept."""
    binary = (ink > INK_LEVEL).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=config.connectivity)
    if n <= 1:
        return labels, []
    areas = stats[1:, cv2.CC_STAT_AREA]
    min_area = max(config.speck_frac * areas.max(), config.min_ink_frac * ink.size)
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


def _one_digit(a: Blob, b: Blob, config: SplitConfig) -> bool:
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


def _group_digits(blobs: list[Blob], config: SplitConfig = DEFAULT_SPLIT) -> list[Blob]:
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
        short = [i for i, g in enumerate(groups) if g.h < config.fragment * tallest]
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


def _drop_faint(ink: np.ndarray, labels: np.ndarray, groups: list[Blob],
                config: SplitConfig = DEFAULT_SPLIT) -> list[Blob]:
    """``groups`` less those whose ink is much fainter than the boldest group's: a
    shadow's edge or a rule left over, not a digit written with the same pen (strength:
    the ``strength`` percentile of a group's ink; fainter: below ``faint`` x the
    strongest's)."""
    if len(groups) < 2:
        return groups
    strength = [float(np.percentile(ink[np.isin(labels, g.labels)], config.strength))
                for g in groups]
    return [g for g, v in zip(groups, strength) if v >= config.faint * max(strength)]


def _seam(patch: np.ndarray, lo: int, hi: int, pull: float = DEFAULT_SPLIT.seam_pull) -> np.ndarray:
    """The top-to-bottom path through ``patch`` (``(h, w)`` ink) that crosses the least ink,
    kept within columns ``[lo, hi)`` and moving at most one column per row: ``(h,)`` int,
    the column where each row is cut. Unlike a straight cut it can follow the gap between
    two digits that lean into each other. ``pull``: the cost per column of straying from
    the window's middle (breaks ties in blank gaps).
    """
    band = patch[:, lo:hi].astype(np.float64)
    h, w = band.shape
    cost = band.copy()
    cost += pull * np.abs(np.arange(w) - (w - 1) / 2)[None, :] / max(w, 1)
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


def _split_touching(ink: np.ndarray, blob: Blob, n: int, cut: str = "thinnest",
                    config: SplitConfig = DEFAULT_SPLIT) -> list[np.ndarray]:
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
        inked = patch > INK_LEVEL
        rows = np.arange(blob.h)[:, None]
        top = np.where(inked, rows, blob.h).min(axis=0)
        bottom = np.where(inked, rows, -1).max(axis=0)
        profile = np.where(bottom >= top, bottom - top + 1, 0).astype(np.float64)
    else:
        profile = patch.sum(axis=0)
    profile = np.convolve(profile, np.ones(config.smooth) / config.smooth, mode="same")
    step, cuts = blob.w / n, []
    for k in range(1, n):
        lo = int(step * (k - config.cut_window))
        hi = max(int(step * (k + config.cut_window)), lo + 1)
        cuts.append(_seam(patch, lo, hi, config.seam_pull) if cut == "seam"
                    else np.full(blob.h, lo + int(np.argmin(profile[lo:hi]))))
    xs = np.arange(blob.w)[None, :]
    edges = [np.zeros(blob.h, np.int64), *cuts, np.full(blob.h, blob.w)]
    return [(xs >= a[:, None]) & (xs < b[:, None]) for a, b in zip(edges, edges[1:])]


def _stages_for(ink: np.ndarray, labels: np.ndarray, blob: Blob, part: np.ndarray | None,
                config: SplitConfig = DEFAULT_SPLIT,
                geometry: GeometryConfig = DEFAULT_GEOMETRY) -> Stages:
    """The stages of one digit: ``blob``'s components, within ``part`` (a ``(h, w)`` bool
    mask over the blob's box) when the blob was cut into several digits. Raises
    :class:`NoDigitError` when no ink is left in ``part``."""
    region = labels[blob.y:blob.y + blob.h, blob.x:blob.x + blob.w]
    inside = np.isin(region, blob.labels)
    side = 2 * config.fringe + 1
    keep = cv2.dilate(inside.astype(np.uint8), np.ones((side, side), np.uint8)).astype(bool)
    if part is not None:
        keep &= part
        inside &= part
    crop = np.where(keep, ink[blob.y:blob.y + blob.h, blob.x:blob.x + blob.w], 0).astype(np.float32)
    # Tighten to the ink actually left (a part of a cut blob can leave empty rows).
    rows, cols = np.nonzero(crop > INK_LEVEL)
    if rows.size == 0:
        raise NoDigitError("no digit found in this part of the image")
    crop = crop[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    fitted, boxed, final, width = normalise_crop(crop, geometry)
    mask = np.zeros(ink.shape, bool)
    mask[blob.y:blob.y + blob.h, blob.x:blob.x + blob.w] = inside
    box = (blob.x + int(cols.min()), blob.y + int(rows.min()), crop.shape[1], crop.shape[0])
    return Stages(ink, mask, box, crop, fitted, boxed, final, width)


def _pieces(ink: np.ndarray, labels: np.ndarray, group: Blob, n: int, config: SplitConfig,
            geometry: GeometryConfig, cut: str = "thinnest") -> list[Stages]:
    out = []
    for part in _split_touching(ink, group, n, cut, config):
        try:
            out.append(_stages_for(ink, labels, group, part, config, geometry))
        except NoDigitError:
            continue
    return out


def _read_group(ink: np.ndarray, labels: np.ndarray, group: Blob, in_row: bool,
                config: SplitConfig, geometry: GeometryConfig, judge: Judge | None) -> list[Stages]:
    """One group of strokes as one digit or as several that touch.

    A group holds about ``width / (digit_aspect x height)`` digits. Without a ``judge``,
    only a group wider than ``touching_aspect`` x its height is cut, into that many. But
    width alone cannot tell one wide digit (a flat 0, a 7 with a long bar, a 2 with a long
    tail) from several that touch (a thick brush on a small canvas), so with a judge every
    group wider than ``row_aspect`` (beside other digits) or ``alone_aspect`` x its height
    is read whole and cut into each plausible count, in each of the ways
    :func:`_split_touching` knows, and the reading the judge is surest of (the mean of
    each digit's top probability) is kept; a count must beat a smaller one by
    ``split_margin`` to be chosen.
    """
    n = max(2, round(group.w / (config.digit_aspect * group.h)))
    wide = group.w > config.touching_aspect * group.h
    aspect = config.row_aspect if in_row else config.alone_aspect
    if judge is None or group.w <= aspect * group.h:
        return _pieces(ink, labels, group, n if wide else 1, config, geometry)
    counts = sorted({1, n - 1, n, n + 1} - {0})
    readings = [r for k in counts
                for r in ([_pieces(ink, labels, group, k, config, geometry)] if k == 1
                          else [_pieces(ink, labels, group, k, config, geometry, cut)
                                for cut in CUTS])
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


def one_digit(ink: np.ndarray, config: SplitConfig = DEFAULT_SPLIT,
              geometry: GeometryConfig = DEFAULT_GEOMETRY) -> Stages:
    """All ink in ``ink`` other than specks as a single digit. Raises
    :class:`NoDigitError` when there is none."""
    labels, blobs = _components(ink, config)
    if not blobs:
        raise NoDigitError("no digit found: the image looks blank")
    blob = blobs[0]
    for other in blobs[1:]:
        blob = _merge(blob, other)
    return _stages_for(ink, labels, blob, None, config, geometry)


def split_digits(ink: np.ndarray, config: SplitConfig = DEFAULT_SPLIT,
                 geometry: GeometryConfig = DEFAULT_GEOMETRY,
                 judge: Judge | None = None) -> list[Stages]:
    """Every digit in ``ink``, left to right.

    Components are grouped into digits by horizontal overlap (:func:`_group_digits`),
    groups far fainter than the boldest dropped (:func:`_drop_faint`), and a group too
    wide for one digit cut apart (:func:`_read_group`; ``judge``, a classifier's
    ``(N, 28, 28) -> (N, 10)`` probabilities, settles the doubtful widths). Raises
    :class:`NoDigitError` when no digit is left.
    """
    labels, blobs = _components(ink, config)
    if not blobs:
        raise NoDigitError("no digit found: the image looks blank")
    groups = _drop_faint(ink, labels, _group_digits(blobs, config), config)
    out = [stages for group in groups
           for stages in _read_group(ink, labels, group, len(groups) > 1, config, geometry, judge)]
    if not out:
        raise NoDigitError("no digit found: the image looks blank")
    return out

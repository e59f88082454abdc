"""Real handwriting that is not MNIST: the shipped models after preprocessing.

Floors (issue 4): on the Chars74K strokes rendered as canvas drawings the CNN reads at least
99.5% and the dense and NumPy networks 98.5%; as photos the CNN 99%; on Semeion the CNN 95%.
USPS is held at a regression floor below the issue's (see FLOORS). Scores are for digits
read as the app reads them (preprocessing, then each model's test-time views). The dev set
lives outside the repository; without it these skip.
"""

from __future__ import annotations

import numpy as np
import pytest

from mnist_core.datasets import handwriting as hw
from mnist_core.artifacts.files import DEFAULT_DIR, load_models
import cv2

from mnist_core.bench import handwriting_scores, misses_sheet, naive_input, sequence_scores

FLOORS = {
    "chars74k-canvas": {"cnn": 0.995, "dense": 0.985, "numpy": 0.985},
    "chars74k-photo": {"cnn": 0.99},
    # Not an issue floor: the photo with the desk around the sheet (99.1% measured; without
    # isolate_sheet the CNN read 11%).
    "chars74k-desk": {"cnn": 0.985},
    # Nor this: on ruled or squared paper (98.9% measured; 60% without remove_ruling,
    # 98.0% when a stroke lying along a rule was erased with it).
    "chars74k-ruled": {"cnn": 0.985},
    "semeion": {"cnn": 0.95},
    # NOT the floor (USPS 98.5%), which the shipped CNN does not reach yet (see
    # benchmarks/RESULTS.md and the open issue): this only stops regressions below what it
    # measures now. Most USPS misses are broken or ambiguous strokes (open 0s, 5s whose bar
    # joins the bowl).
    "usps": {"cnn": 0.975},
}

needs_dev_set = pytest.mark.skipif(not hw.DEFAULT_DIR.is_dir(),
                                   reason=f"handwriting dev set not found at {hw.DEFAULT_DIR}")


def _strokes():
    return [[np.array([[0, 0], [10, 40], [20, 80]], np.float32)],
            [np.array([[0, 0], [30, 0]], np.float32), np.array([[15, 0], [15, 60]], np.float32)]]


def test_canvas_rendering_matches_the_app_canvas():
    rng = np.random.default_rng(0)
    for strokes in _strokes():
        img = hw.render_canvas(strokes, rng)
        assert img.shape == (280, 280, 4) and img.dtype == np.uint8
        ink = img[..., 3] > 0
        ys, xs = np.nonzero(ink)
        height = ys.max() - ys.min()
        assert 0.4 * 280 <= height <= 0.85 * 280 + 30  # digit size plus the brush
        assert (img[..., :3][ink] == 255).all()        # white ink
        assert not img[..., 3][0].any() and not img[..., 3][:, 0].any()  # inside the canvas


def test_renderings_are_reproducible():
    a = hw.render_photo(_strokes()[0], np.random.default_rng(3))
    b = hw.render_photo(_strokes()[0], np.random.default_rng(3))
    assert np.array_equal(a, b) and a.ndim == 3 and a.shape[2] == 3
    assert np.median(a) > 120  # light paper, dark ink


def test_desk_photo_shows_a_light_sheet_on_a_darker_desk():
    img = hw.render_desk_photo(_strokes()[1], np.random.default_rng(4))
    grey = img.mean(axis=2)
    h, w = grey.shape
    assert img.dtype == np.uint8 and min(h, w) >= 360
    # Desk shows along the border; the sheet (55-80% of the frame's side, so 30-64% of
    # its area) is far lighter.
    border = np.concatenate([grey[:3].ravel(), grey[-3:].ravel(), grey[:, :3].ravel(),
                             grey[:, -3:].ravel()])
    assert np.median(border) < 120
    assert 0.25 < (grey > 150).mean() < 0.7


def test_ruled_photo_has_evenly_spaced_rules_under_the_ink():
    img = hw.render_ruled_photo(_strokes()[0], np.random.default_rng(2))
    rows = img.mean(axis=(1, 2))
    # A rule darkens its whole row against the rows a few pixels away (the light varies
    # slowly across the page, so the comparison is local).
    near = np.maximum(np.roll(rows, 5), np.roll(rows, -5))
    dark_rows = np.flatnonzero(rows < near - 8)
    dark_rows = dark_rows[(dark_rows >= 5) & (dark_rows < len(rows) - 5)]  # no wrap-around
    starts = dark_rows[np.r_[True, np.diff(dark_rows) > 1]]
    assert len(starts) >= 5
    pitch = np.diff(starts)
    assert 20 <= pitch.min() and pitch.max() <= 42


def test_naive_input_is_the_whole_image_resized():
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[:140, :, 3] = 255
    x = naive_input(canvas)
    assert x.shape == (28, 28) and x[:14].min() == 1.0 and x[14:].max() == 0.0


def test_misses_sheet_has_one_tile_per_miss_showing_input_and_what_was_read():
    raw = [np.full((280, 280, 4), 0, np.uint8) for _ in range(11)]
    raw[3][..., 3] = 255                                   # one canvas all ink
    finals = np.zeros((11, 28, 28), np.float32)
    finals[3] = 1.0                                        # and it read all ink
    labels = np.arange(11) % 10
    probs = np.eye(10, dtype=np.float32)[labels]
    wrong = [3, 4, 5, 6, 7, 8, 9, 10, 0]                   # nine misses: two rows of eight
    probs[wrong] = np.eye(10, dtype=np.float32)[(labels[wrong] + 1) % 10]
    sheet = misses_sheet(raw, finals, labels, probs, columns=8, side=32)
    assert sheet.shape == (2 * (32 + 16), 8 * (2 * 32 + 4)) and sheet.dtype == np.uint8
    # The first tile is the miss at index 0 (label 0), the second index 3: input and read.
    tile = sheet[16:48, 68:68 + 68]
    assert tile[:, :32].min() == 255 and tile[:, 34:66].min() == 255
    assert sheet[16:48, :32].max() == 0                     # index 0: blank input
    assert sheet[:14, :68].max() > 200                      # its caption is written
    assert sheet[48 + 16:, 68:].max() == 40                 # the tenth slot stays empty
    none = misses_sheet(raw, finals, labels, np.eye(10, dtype=np.float32)[labels])
    assert none.shape == (0, 0)


@pytest.fixture(scope="module")
def misses_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("misses")


@pytest.fixture(scope="module")
def scores(misses_dir):
    if not (DEFAULT_DIR / "manifest.json").is_file():
        pytest.fail(f"no shipped artifacts in {DEFAULT_DIR}; run `python -m mnist_core train`")
    return handwriting_scores(load_models(DEFAULT_DIR), hw.DEFAULT_DIR, misses_dir=misses_dir)


@needs_dev_set
def test_every_cnn_miss_is_drawn_on_its_sets_sheet(scores, misses_dir):
    for set_name, s in scores.items():
        missed = round(s["n"] * (1 - s["ours"]["cnn"]))
        path = misses_dir / f"misses-{set_name}.png"
        assert path.is_file() == (missed > 0) and s.get("misses") == (path if missed else None)
        if missed:
            sheet = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            assert sheet.shape[0] == -(-missed // 8) * (64 + 16), set_name


@needs_dev_set
@pytest.mark.parametrize("set_name,model", [(s, m) for s, f in FLOORS.items() for m in f])
def test_real_handwriting_floor(scores, set_name, model):
    got = scores[set_name]["ours"][model]
    assert got >= FLOORS[set_name][model], f"{model} on {set_name}: {got:.2%}"


@needs_dev_set
def test_views_help_the_cnn_on_stretched_scans(scores):
    # Semeion digits were stretched to fill a square; reading them narrowed as well as
    # turned and resized is what lifts the CNN from ~88% to the floor.
    assert scores["semeion"]["ours"]["cnn"] > scores["semeion"]["one_view"]["cnn"] + 0.03
    for set_name in ("chars74k-canvas", "chars74k-photo"):
        assert scores[set_name]["ours"]["cnn"] >= scores[set_name]["one_view"]["cnn"]


@needs_dev_set
def test_preprocessing_beats_the_naive_resize_on_drawings(scores):
    for set_name in ("chars74k-canvas", "chars74k-photo", "chars74k-desk", "chars74k-ruled"):
        s = scores[set_name]
        assert s["ours"]["cnn"] > s["naive"]["cnn"] + 0.05
        assert s["no_digit"] == 0


# Rows of several digits (not issue floors: regression floors under what was measured when
# they were added, 87-88.5% of canvas rows and 99.5% of photographed rows read exactly by
# the CNN; before the models judged touching digits, 67.5% of canvas rows).
ROW_FLOORS = {"row-canvas": {"count": 0.85, "cnn": 0.84}, "row-photo": {"count": 0.98, "cnn": 0.97}}


@pytest.fixture(scope="module")
def row_scores():
    return sequence_scores(load_models(DEFAULT_DIR), hw.DEFAULT_DIR)


def test_rows_are_written_left_to_right_and_labelled():
    rng = np.random.default_rng(0)
    digits = _strokes()
    row = hw.write_in_a_row(digits, rng)
    assert len(row) == sum(len(d) for d in digits)
    first, second = np.concatenate(row[:1]), np.concatenate(row[1:])
    assert first[:, 0].max() < second[:, 0].min()          # the second digit starts after
    heights = [np.ptp(first[:, 1]), np.ptp(second[:, 1])]
    assert 0.8 < heights[0] / heights[1] < 1.25             # about one height


@needs_dev_set
@pytest.mark.parametrize("set_name", list(ROW_FLOORS))
def test_rows_of_digits_floor(row_scores, set_name):
    s, floor = row_scores[set_name], ROW_FLOORS[set_name]
    assert s["n"] == 200
    assert s["count"] >= floor["count"], f"{set_name}: split right {s['count']:.1%}"
    assert s["exact"]["cnn"] >= floor["cnn"], f"{set_name}: cnn exact {s['exact']['cnn']:.1%}"
    assert s["digits"]["cnn"] >= s["exact"]["cnn"]

"""Each preprocessing step on constructed images whose right answer is known."""

from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from mnist_core import preprocess as P
from mnist_core.preprocess import pipeline
from mnist_core.preprocess.ink import CANVAS_POLARITY, flatten_alpha
from mnist_core.preprocess.split import _seam, _split_touching


def canvas_with(draw, size=280, rgba=True) -> np.ndarray:
    """A transparent 280x280 RGBA canvas with white strokes drawn by ``draw(img, colour)``."""
    img = np.zeros((size, size, 4 if rgba else 3), np.uint8)
    draw(img, (255, 255, 255, 255) if rgba else (255, 255, 255))
    return img


def one(img, colour):
    cv2.line(img, (140, 60), (140, 220), colour, 18)


def png_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


# -- ink extraction ---------------------------------------------------------------------

def test_ink_map_canvas_is_white_on_black_and_keeps_the_stroke():
    ink = P.ink_map(canvas_with(one))
    assert ink.dtype == np.float32 and ink.shape == (280, 280)
    assert ink[140, 140] > 0.9 and ink[20, 20] == 0 and ink[140, 40] == 0


def test_ink_map_inverts_dark_ink_on_light_paper():
    paper = np.full((200, 200, 3), 235, np.uint8)
    cv2.line(paper, (100, 30), (100, 170), (20, 20, 20), 12)
    ink = P.ink_map(paper)
    assert ink[100, 100] > 0.9
    assert ink[10, 10] == 0 and ink[100, 20] == 0


def _tight_five(width: int) -> np.ndarray:
    """A 5 cropped tight as a scan's 16x16 box is, its bar running off the top corners, so
    two corners are ink and two paper: ``(64, 64) uint8``, white ink on black."""
    img = np.zeros((64, 64), np.uint8)
    pts = np.array([[70, 4], [-8, 4], [14, 4], [12, 30], [40, 26], [54, 40], [40, 54],
                    [10, 52]], np.int32)
    cv2.polylines(img, [pts], False, 255, width)
    return img


@pytest.mark.parametrize("width", [12, 3], ids=["bold", "thin"])
@pytest.mark.parametrize("dark_ink", [False, True], ids=["white-ink", "dark-ink"])
def test_ink_map_polarity_when_the_corners_disagree(width, dark_ink):
    # Bold: ink covers most of the picture (so its commonest colour is ink) but little of
    # the frame. Thin: the bar covers a third of the frame but little of the picture.
    five = _tight_five(width)
    ink_share = (five > 0).mean()
    assert (ink_share > 0.5) == (width == 12)
    ink = P.ink_map(255 - five if dark_ink else five)
    assert np.corrcoef(five.ravel() > 0, ink.ravel())[0, 1] > 0.9


def test_ink_map_ignores_a_shadow_gradient_and_finds_coloured_ink():
    h, w = 300, 300
    light = np.linspace(0.55, 1.0, w, dtype=np.float32)[None, :, None]
    paper = (np.full((h, w, 3), 240, np.float32) * light).astype(np.uint8)
    cv2.line(paper, (80, 60), (80, 240), (40, 60, 200), 10)      # blue ink in the shadow
    cv2.line(paper, (230, 60), (230, 240), (200, 40, 40), 10)    # red ink in the light
    ink = P.ink_map(paper)
    assert ink[150, 80] > 0.7 and ink[150, 230] > 0.7
    # the paper itself, dark side and bright side, stays black
    assert ink[150, 15].max() < 0.05 and ink[150, 285] < 0.05 and ink[150, 155] < 0.05


def _sheet_on_desk(angle: float = 6.0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A light sheet, slightly turned, on a dark desk, with a dark 7 on it; and the 7's box
    (x, y, w, h) in the photo."""
    photo = np.empty((360, 480, 3), np.uint8)
    photo[:] = (70, 50, 40)                                        # a brown desk
    corners = cv2.boxPoints(((250, 175), (300, 240), angle)).astype(np.int32)
    cv2.fillConvexPoly(photo, corners, (232, 228, 220))
    cv2.line(photo, (205, 120), (285, 120), (30, 30, 40), 9)       # the 7's bar
    cv2.line(photo, (285, 120), (235, 235), (30, 30, 40), 9)       # and its stem
    return photo, (200, 115, 91, 125)


def test_a_sheet_on_a_dark_desk_is_cut_out_before_reading():
    photo, (x, y, w, h) = _sheet_on_desk()
    isolated = P.isolate_sheet(photo)
    assert not np.array_equal(isolated, photo)
    assert np.abs(isolated[5, 5].astype(int) - [232, 228, 220]).max() < 12  # desk -> paper
    stages = P.preprocess(photo)
    scale = stages.ink.shape[1] / photo.shape[1]  # boxes are in the working resolution
    bx, by, bw, bh = (v / scale for v in stages.box)
    # The digit is found, not the sheet: its box matches the 7's within the brush width.
    assert abs(bx - x) <= 8 and abs(by - y) <= 8 and abs(bw - w) <= 12 and abs(bh - h) <= 12


@pytest.mark.parametrize("image", [
    canvas_with(one),                                                   # a canvas drawing
    canvas_with(lambda img, c: cv2.ellipse(img, (140, 140), (120, 125), 0, 0, 360, c, 70)),
    np.dstack([np.full((200, 200), v, np.uint8) for v in (235, 235, 235)]),  # a blank page
    cv2.line(np.full((200, 200, 3), 235, np.uint8), (100, 40), (100, 160), (20, 20, 20), 9),
], ids=["canvas", "bold-zero", "page", "page-edge-to-edge"])
def test_isolate_sheet_leaves_drawings_and_full_pages_alone(image):
    rgb = flatten_alpha(image, P.polarity(image)) if image.shape[2] == 4 else image
    np.testing.assert_array_equal(P.isolate_sheet(rgb), rgb)


def test_isolate_sheet_ignores_a_soft_shadow_across_a_page():
    h, w = 300, 300
    light = np.linspace(0.55, 1.0, w, dtype=np.float32)[None, :, None]
    paper = (np.full((h, w, 3), 240, np.float32) * light).astype(np.uint8)
    cv2.line(paper, (150, 60), (150, 240), (30, 30, 30), 10)
    np.testing.assert_array_equal(P.isolate_sheet(paper), paper)


def _ruled_page(grid: bool) -> np.ndarray:
    """Light paper ruled every 24 px (and squared if ``grid``), a dark 1 across the rules."""
    page = np.full((300, 300, 3), 235, np.uint8)
    for v in range(10, 300, 24):
        cv2.line(page, (0, v), (299, v), (150, 160, 215), 2)
        if grid:
            cv2.line(page, (v, 0), (v, 299), (150, 160, 215), 2)
    cv2.line(page, (150, 70), (170, 230), (30, 30, 30), 10)
    return page


@pytest.mark.parametrize("grid", [False, True], ids=["ruled", "squared"])
def test_rules_of_ruled_and_squared_paper_are_erased_and_the_digit_kept(grid):
    ink = P.ink_map(_ruled_page(grid))
    rows = np.arange(70, 231)
    stroke_cols = np.round(150 + (rows - 70) * 20 / 160).astype(int)
    # The stroke runs unbroken across every rule...
    assert min(ink[r, c - 2:c + 3].max() for r, c in zip(rows, stroke_cols)) > 0.5
    # ...and away from it the rules are gone.
    away = np.ones_like(ink, bool)
    away[55:245, 130:190] = False
    assert ink[away].max() < 0.1
    stages = P.preprocess(_ruled_page(grid))
    x, y, w, h = stages.box
    assert 60 <= y <= 75 and 150 <= h <= 175 and w <= 45


@pytest.mark.parametrize("slant", [0, 40], ids=["upright", "slanted"])
def test_a_stroke_keeps_its_width_where_it_crosses_a_rule(slant):
    page = np.full((300, 300, 3), 235, np.uint8)
    for v in range(10, 300, 24):
        cv2.line(page, (0, v), (299, v), (150, 160, 215), 2)
    cv2.line(page, (150 - slant, 40), (150 + slant, 260), (30, 30, 30), 10)
    ink = P.ink_map(page)
    widths = [(ink[r] > 0.5).sum() for r in range(60, 240)]
    on_rules = [w for r, w in zip(range(60, 240), widths) if (r - 10) % 24 in (23, 0, 1, 2)]
    between = [w for r, w in zip(range(60, 240), widths) if (r - 10) % 24 in range(6, 18)]
    # No ticks or notches where the rules were: the same width as between them, +-2 px.
    assert abs(np.median(on_rules) - np.median(between)) <= 2
    assert max(on_rules) <= max(between) + 2 and min(on_rules) >= min(between) - 2


def test_a_stroke_lying_along_a_rule_is_kept():
    # A 2's base written on a rule, across most of the page: the band there is as dark as
    # the stroke over most of its width, but thicker than the rules are.
    page = _ruled_page(grid=False)
    cv2.line(page, (40, 202), (260, 202), (30, 30, 30), 8)          # the rule at y=202
    ink = P.ink_map(page)
    assert ink[202, 50:250].min() > 0.5                             # the base survives
    assert ink[178, 20:130].max() < 0.1                              # the rule above does not


def test_a_three_with_three_bars_is_not_mistaken_for_ruling():
    ink = np.zeros((64, 64), np.float32)
    for y in (6, 30, 54):
        ink[y:y + 6, 4:60] = 1.0          # three evenly spaced bars spanning the width
    ink[6:60, 54:60] = 1.0
    np.testing.assert_array_equal(P.remove_ruling(ink), ink)


def test_blank_images_hold_no_digit():
    for blank in (np.zeros((280, 280, 4), np.uint8), np.full((100, 100, 3), 250, np.uint8)):
        with pytest.raises(P.NoDigitError):
            P.preprocess(blank)


def test_noise_alone_is_no_digit():
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(230, 4, (240, 240, 3)), 0, 255).astype(np.uint8)
    with pytest.raises(P.NoDigitError):
        P.preprocess(paper)


def test_specks_are_ignored_when_cropping():
    img = canvas_with(one)
    cv2.circle(img, (20, 20), 2, (255, 255, 255, 255), -1)  # a speck far away
    stages = P.preprocess(img)
    x, y, w, h = stages.box
    assert x > 100 and y > 40 and h > 150 and w < 40  # the box hugs the stroke, not the speck


# -- MNIST geometry ---------------------------------------------------------------------

def test_crop_box_and_fit_into_20_keeping_aspect():
    img = np.zeros((200, 300), np.uint8)
    cv2.rectangle(img, (50, 40), (249, 139), 255, 12)  # 200 wide, 100 tall outline
    stages = P.preprocess(img)
    x, y, w, h = stages.box
    assert abs(x - 44) <= 2 and abs(y - 34) <= 2 and abs(w - 212) <= 3 and abs(h - 112) <= 3
    fh, fw = stages.fitted.shape
    assert fw == 20 and abs(fh - round(20 * h / w)) <= 1


def test_final_is_centred_by_mass_at_14_14():
    # An L shape: its centre of mass is far from its bounding-box centre.
    def ell(img, colour):
        cv2.line(img, (60, 40), (60, 240), colour, 20)
        cv2.line(img, (60, 240), (200, 240), colour, 20)
    stages = P.preprocess(canvas_with(ell))
    cy, cx = P.centre_of_mass(stages.final)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    by, bx = P.centre_of_mass(stages.boxed)
    assert abs(by - 14) > 0.5 or abs(bx - 14) > 0.5  # the box centre alone was not enough
    assert stages.final.shape == (28, 28) and stages.final.dtype == np.float32
    assert stages.final.max() == pytest.approx(1.0) and stages.final.min() >= 0


def test_position_and_size_do_not_change_the_result():
    def digit_at(x, y, s):
        def draw(img, colour):
            cv2.circle(img, (x, y), s, colour, max(4, s // 5))
            cv2.line(img, (x + s, y), (x + s, y + 2 * s), colour, max(4, s // 5))
        return canvas_with(draw)
    a = P.preprocess(digit_at(70, 70, 30)).final
    b = P.preprocess(digit_at(150, 120, 55)).final
    # Equal up to resampling and the whole-pixel rounding of the centring shift.
    best = min(np.abs(np.roll(a, (dy, dx), axis=(0, 1)) - b).mean()
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    assert best < 0.03


def test_stroke_width_estimate_and_normalisation():
    # Rings have no line caps, so 2 x area / perimeter is exactly their width.
    for width in (4, 20):
        ring = np.zeros((200, 200), np.float32)
        cv2.circle(ring, (100, 100), 80, 1.0, width)
        assert P.stroke_width(ring) == pytest.approx(width, abs=1.0)  # pixel-grid outline
    # after normalising, hairline and marker end up within MNIST's range of widths
    widths = []
    for w in (3, 45):
        img = np.zeros((280, 280), np.uint8)
        cv2.circle(img, (140, 140), 90, 255, w)
        final = P.preprocess(img).final
        widths.append(P.stroke_width(cv2.resize(final, (112, 112))) / 112 * 28 / 20)
    assert all(0.06 < r < 0.2 for r in widths), widths


# -- decoding ---------------------------------------------------------------------------

def test_decode_applies_exif_rotation():
    arr = np.full((40, 80, 3), 255, np.uint8)
    arr[:, :10] = 0  # a dark band on the left edge
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    out = P.decode_image(buf.getvalue())
    assert out.shape[:2] == (80, 40)           # rotated to portrait
    assert out[:10, :, 0].mean() < 60          # the band is now along the top edge


def test_decode_keeps_transparency_and_black_ink_on_transparent_reads_as_ink():
    rgba = np.zeros((120, 120, 4), np.uint8)
    cv2.line(rgba, (60, 15), (60, 105), (0, 0, 0, 255), 10)  # black ink, transparent paper
    arr = P.decode_image(png_bytes(rgba))
    assert arr.shape == (120, 120, 4)
    stages = P.preprocess(arr)
    assert stages.box[3] > 80 and stages.box[2] < 25


def test_gif_first_frame_and_grey_and_bmp_decode():
    frames = [Image.fromarray(np.full((30, 30), v, np.uint8)) for v in (10, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert P.decode_image(buf.getvalue())[..., 0].mean() < 50
    assert P.decode_image(png_bytes(np.zeros((5, 5), np.uint8), format="BMP")).shape == (5, 5, 3)


def test_decode_rejects_garbage_and_oversized_images():
    with pytest.raises(P.ImageReadError, match="not a readable image"):
        P.decode_image(b"\x89PNG\r\n\x1a\nnot really")
    big = png_bytes(np.zeros((300, 300), np.uint8))
    with pytest.raises(P.ImageReadError, match="megapixels"):
        P.decode_image(big, max_pixels=50_000)
    with pytest.raises(P.ImageReadError, match="MB"):
        P.decode_image(b"0" * 100, max_bytes=10)


# -- several digits ---------------------------------------------------------------------

def _sequence(digits: list[str], touching=False) -> np.ndarray:
    img = np.zeros((120, 60 * len(digits) + 40), np.uint8)
    step = 44 if touching else 60
    for i, d in enumerate(digits):
        cv2.putText(img, d, (20 + i * step, 95), cv2.FONT_HERSHEY_SIMPLEX, 3, 255, 8, cv2.LINE_AA)
    return img


def test_segment_splits_a_sequence_left_to_right():
    parts = P.segment(_sequence(list("2026")))
    assert len(parts) == 4
    xs = [p.box[0] for p in parts]
    assert xs == sorted(xs)


def test_segment_keeps_a_broken_digit_whole():
    # A 5 whose top bar is a separate stroke, and a 4 drawn as two strokes.
    img = np.zeros((200, 400), np.uint8)
    cv2.line(img, (60, 30), (120, 30), 255, 10)
    cv2.ellipse(img, (85, 120), (40, 45), 0, -120, 150, 255, 10)
    cv2.line(img, (60, 35), (55, 85), 255, 10)
    cv2.line(img, (260, 30), (230, 120), 255, 10)
    cv2.line(img, (230, 120), (310, 120), 255, 10)
    cv2.line(img, (290, 60), (292, 180), 255, 10)
    parts = P.segment(img)
    assert len(parts) == 2


def test_segment_cuts_touching_digits():
    img = np.zeros((120, 200), np.uint8)
    cv2.circle(img, (60, 60), 40, 255, 10)
    cv2.circle(img, (138, 60), 40, 255, 10)  # two 0s touching
    parts = P.segment(img)
    assert len(parts) == 2
    assert parts[0].box[0] < parts[1].box[0]


def test_segment_keeps_a_leaning_digit_apart_from_its_neighbour():
    # A 1 leaning over a 7: their boxes overlap by more than half the 1's width, but both
    # are full height and neither lies within the other.
    img = np.zeros((280, 280), np.uint8)
    cv2.polylines(img, [np.array([[40, 60], [120, 60], [80, 200]], np.int32)], False, 255, 12)
    cv2.line(img, (140, 60), (105, 200), 255, 12)
    parts = P.segment(img)
    assert len(parts) == 2
    seven, one = (p.box for p in parts)
    assert seven[0] < one[0] and one[0] < seven[0] + seven[2]  # overlapping, yet apart


def test_seam_follows_a_slanted_gap_a_straight_cut_would_cross():
    patch = np.ones((60, 60), np.float32)
    for y in range(60):
        patch[y, 15 + y // 2:19 + y // 2] = 0                      # a gap leaning right
    path = _seam(patch, 5, 55)
    assert all(15 + y // 2 <= x < 19 + y // 2 for y, x in enumerate(path))
    assert np.abs(np.diff(path)).max() <= 1


def test_a_blob_is_cut_into_masks_that_tile_its_box():
    ink = np.zeros((100, 200), np.float32)
    ink[10:90, 10:190] = 1
    blob = P.Blob(10, 10, 180, 80, (1,))
    for cut in P.CUTS:
        parts = _split_touching(ink, blob, 3, cut)
        assert len(parts) == 3 and all(p.shape == (80, 180) for p in parts)
        np.testing.assert_array_equal(np.sum(parts, axis=0), 1)   # every pixel in one part


@pytest.mark.parametrize("second,kept", [(255, 2), (150, 2), (70, 1)],
                         ids=["same-pen", "lighter-pencil", "shadow-edge"])
def test_segment_drops_marks_far_fainter_than_the_digits(second, kept):
    img = np.zeros((200, 300), np.uint8)
    cv2.line(img, (80, 40), (80, 160), 255, 10)                 # a bold 1
    cv2.rectangle(img, (180, 40), (230, 160), second, 10)       # a second "0", darker or not
    parts = P.segment(img)
    assert len(parts) == kept and parts[0].box[0] < 100


def test_single_digit_is_not_split():
    assert len(P.segment(canvas_with(one))) == 1


# -- polarity: the one decision ---------------------------------------------------------

@pytest.mark.parametrize("light_ink", [False, True], ids=["dark-on-light", "light-on-dark"])
def test_polarity_names_the_ink_side_and_the_paper(light_ink):
    paper, ink = (30, 230) if light_ink else (235, 20)
    page = np.full((200, 200, 3), paper, np.uint8)
    cv2.line(page, (100, 30), (100, 170), (ink, ink, ink), 12)
    decided = P.polarity(page)
    assert decided.light_ink == light_ink
    assert abs(decided.paper_level - paper) <= 8
    assert decided.reasons and all(isinstance(r, str) and r for r in decided.reasons)
    assert "surface" in decided.describe()


@pytest.mark.parametrize("dark_ink", [False, True], ids=["white-ink", "dark-ink"])
def test_polarity_of_a_bold_tight_crop(dark_ink):
    # Ink covers most of the picture and two corners: the majority of pixels is ink.
    five = _tight_five(12)
    decided = P.polarity(255 - five if dark_ink else five)
    assert decided.light_ink == (not dark_ink)
    assert decided.reasons


def test_polarity_of_a_transparent_background_is_the_drawn_pixels():
    black = np.zeros((120, 120, 4), np.uint8)
    cv2.line(black, (60, 15), (60, 105), (0, 0, 0, 255), 10)
    white = canvas_with(one)
    assert P.polarity(black).light_ink is False and P.polarity(black).paper_level == 255
    assert P.polarity(white).light_ink is True and P.polarity(white).paper_level == 0
    assert all(d.reasons[0].startswith("alpha") for d in (P.polarity(black), P.polarity(white)))


def test_stages_keep_the_polarity_decided():
    page = np.full((200, 200, 3), 235, np.uint8)
    cv2.line(page, (100, 30), (100, 170), (20, 20, 20), 12)
    decided = P.preprocess(page).polarity
    assert decided is not None and not decided.light_ink and decided.reasons
    assert P.preprocess(canvas_with(one), canvas=True).polarity == CANVAS_POLARITY


# -- the canvas short path --------------------------------------------------------------

def _drawn_seven(img, colour):
    cv2.polylines(img, [np.array([[60, 60], [220, 60], [130, 230]], np.int32)], False, colour,
                  20, cv2.LINE_AA)


def test_canvas_path_reads_a_drawing_as_the_full_path_does():
    drawing = canvas_with(_drawn_seven)
    short, full = P.preprocess(drawing, canvas=True), P.preprocess(drawing)
    assert np.abs(np.array(short.box) - full.box).max() <= 1
    assert np.abs(short.final - full.final).max() < 0.05
    assert short.final.shape == (28, 28) and short.final.dtype == np.float32
    ink = P.ink_from_canvas(drawing)
    assert ink.shape == (280, 280) and ink.dtype == np.float32 and 0 <= ink.min() <= ink.max() <= 1
    assert ink[60, 140] > 0.9 and ink[20, 20] == 0
    several = canvas_with(lambda img, c: [one(img, c), cv2.circle(img, (60, 140), 40, c, 14)])
    assert len(P.segment(several, canvas=True)) == len(P.segment(several)) == 2


def test_blank_canvas_holds_no_digit_on_the_short_path():
    with pytest.raises(P.NoDigitError):
        P.preprocess(np.zeros((280, 280, 4), np.uint8), canvas=True)
    with pytest.raises(P.NoDigitError):
        P.segment(np.zeros((280, 280, 4), np.uint8), canvas=True)


def test_canvas_path_skips_every_photo_stage(monkeypatch):
    def photo_stage(*args, **kwargs):
        raise AssertionError("a photo stage ran on the canvas path")

    drawing = canvas_with(_drawn_seven)
    for name in ("photo_ink", "flatten_alpha", "isolate_sheet", "polarity", "fit_paper",
                 "ink_from_paper", "remove_ruling"):
        monkeypatch.setattr(pipeline, name, photo_stage)
    assert P.preprocess(drawing, canvas=True).final.max() == pytest.approx(1.0)
    assert len(P.segment(drawing, canvas=True)) == 1
    with pytest.raises(AssertionError, match="photo stage"):
        P.preprocess(drawing)


def test_canvas_flag_on_an_image_without_alpha_takes_the_full_path():
    page = np.full((200, 200, 3), 235, np.uint8)
    cv2.line(page, (100, 30), (100, 170), (20, 20, 20), 12)
    stages = P.preprocess(page, canvas=True)
    np.testing.assert_array_equal(stages.final, P.preprocess(page).final)
    assert stages.notes == [pipeline.NO_ALPHA]


def test_canvas_path_reads_the_opaque_drawing_the_component_returns():
    # streamlit-drawable-canvas paints its black background in: alpha is 255 everywhere
    # (seen in headless Chromium), so the ink is the distance from that background.
    opaque = np.zeros((280, 280, 4), np.uint8)
    opaque[..., 3] = 255
    with pytest.raises(P.NoDigitError):
        P.preprocess(opaque, canvas=True)
    _drawn_seven(opaque, (255, 255, 255, 255))
    transparent = canvas_with(_drawn_seven)
    short = P.preprocess(opaque, canvas=True)
    assert short.polarity == CANVAS_POLARITY and not short.notes
    np.testing.assert_allclose(short.final, P.preprocess(transparent, canvas=True).final,
                               atol=1e-6)
    assert np.abs(short.final - P.preprocess(opaque).final).max() < 0.05


# -- configuration ----------------------------------------------------------------------

STAGE_CONFIGS = [P.InkConfig, P.PolarityConfig, P.SheetConfig, P.LightingConfig,
                 P.RulingConfig, P.SplitConfig, P.GeometryConfig, P.PreprocessConfig]


@pytest.mark.parametrize("config", STAGE_CONFIGS, ids=lambda c: c.__name__)
def test_every_stage_config_is_frozen(config):
    cfg = config()
    field = dataclasses.fields(cfg)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, field, getattr(cfg, field))
    assert hash(cfg) == hash(config())


def test_the_pipeline_config_is_made_of_the_stage_configs():
    kinds = {f.type if isinstance(f.type, str) else f.type.__name__
             for f in dataclasses.fields(P.PreprocessConfig)}
    assert kinds == {c.__name__ for c in STAGE_CONFIGS[:-1]}
    # A stage's knob reaches that stage: no ink is strong enough for a contrast of 1.1.
    blind = dataclasses.replace(P.DEFAULT, ink=dataclasses.replace(P.DEFAULT.ink, min_contrast=1.1))
    with pytest.raises(P.NoDigitError):
        P.preprocess(canvas_with(one), blind, canvas=True)

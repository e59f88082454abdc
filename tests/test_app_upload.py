"""AppTest: the Upload page reads good files and explains each bad one on its own."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import app_helpers as h
from mnist_core.artifacts.files import load_gallery
from mnist_core.reading.inference import read_digits
from mnist_core.preprocess import MAX_BYTES, decode_image
from ui import pictures

TIMEOUT = 180
PAGE = "app_pages/upload.py"


@pytest.fixture
def page(monkeypatch, artifacts):
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.fixture(scope="module")
def good_digit(artifacts):
    gallery = load_gallery(artifacts)
    return gallery.images[int(np.flatnonzero(gallery.sample)[0])]


def upload(at, files):
    at.file_uploader(key="uploads").set_value(files).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_no_files_asks_for_some(page):
    assert any("Choose one or more images" in i.value for i in page.info)
    assert not page.metric


def test_uploader_accepts_the_promised_types(page):
    uploader = page.file_uploader(key="uploads")
    assert uploader.accept_multiple_files
    assert {t.lstrip(".") for t in uploader.allowed_type} == {
        "png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"}


def test_good_files_are_read_and_bad_ones_explained(page, models, good_digit):
    png = h.png_bytes(h.paper_digit(good_digit))
    jpg = h.png_bytes(h.paper_digit(good_digit), ".jpg")
    blank = h.png_bytes(np.full((120, 160, 3), 240, np.uint8))
    corrupt = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    at = upload(page, [("digit.png", png, "image/png"), ("corrupt.png", corrupt, "image/png"),
                       ("blank.png", blank, "image/png"), ("digit.jpg", jpg, "image/jpeg")])

    errors = [e.value for e in at.error]
    warnings = [w.value for w in at.warning if "disagree" not in w.value]
    assert len(errors) == 1 and "corrupt.png" in errors[0] and "not a readable image" in errors[0]
    assert len(warnings) == 1 and "blank.png" in warnings[0] and "No digit" in warnings[0]

    # Both good files are still read, each model's answer as mnist_core gives it.
    expected, expected_readings = [], []
    for data in (png, jpg):
        reading = read_digits(decode_image(data), models)
        assert len(reading) == 1
        expected += [(m.title, str(reading[0].digit(n))) for n, m in models.items()]
        expected_readings.append(reading[0])
    assert [(m.label, m.value) for m in at.metric] == expected
    shown_bars = h.probability_bars(at)                  # each good file's bars
    assert [{t: b["top"] for t, b in bars.items()} for bars in shown_bars] == [
        {m.title: int(reading.digit(n)) for n, m in models.items()}
        for reading in expected_readings]
    captions = [c for image in at.image for c in image.captions]
    assert captions.count("what the models see") == 2
    # Each single digit also shows how it was read: the ink found, down to the model input.
    assert [e.label for e in at.expander] == ["How this image was read"] * 2
    assert captions.count("1 · ink and its box") == 2 and captions.count("as is") == 2


def test_too_big_files_are_refused_with_the_limit(page, models, good_digit):
    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, format="PNG")       # 48 MP, a few kB
    oversize = os.urandom(MAX_BYTES + 1)
    at = upload(page, [("huge.png", huge.getvalue(), "image/png"),
                       ("oversize.png", oversize, "image/png"),
                       ("digit.png", h.png_bytes(h.paper_digit(good_digit)), "image/png")])
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert "huge.png" in errors[0] and "megapixels" in errors[0]
    assert "oversize.png" in errors[1] and "MB" in errors[1]
    assert [m.label for m in at.metric] == [m.title for m in models.values()]  # still read


def test_an_image_over_pillows_bomb_limit_gets_the_size_limit(page):
    from test_decode import png_header

    at = upload(page, [("bomb.png", png_header(20_000, 10_000), "image/png")])
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "bomb.png" in errors[0]
    assert "200 megapixels; the limit is 40 megapixels" in errors[0], errors[0]


def test_a_number_in_one_image_is_read_as_a_sequence(page, models, artifacts):
    gallery = load_gallery(artifacts)
    right = np.all([gallery.preds[n] == gallery.labels for n in models], axis=0)
    rows = [int(np.flatnonzero(right & (gallery.labels == d))[0]) for d in (4, 2)]
    pair = np.hstack([h.paper_digit(gallery.images[r], 160) for r in rows])
    data = h.png_bytes(pair)
    expected = read_digits(decode_image(data), models)
    assert len(expected) == 2
    at = upload(page, [("pair.png", data, "image/png")])
    assert {m.label: m.value for m in at.metric} == {
        m.title: "".join(str(r.digit(n)) for r in expected) for n, m in models.items()}


# ---------------------------------------------------------------------------------------
# Extreme shapes: a 5000x10 strip is shown and answered, never a traceback
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(10, 5000), (5000, 10), (1, 3000), (3000, 1), (1, 1)])
def test_thumbnail_never_has_a_zero_side(shape):
    for channels in (3, 4):
        thumb = pictures.thumbnail(np.full((*shape, channels), 200, np.uint8))
        assert thumb.ndim == 3 and thumb.shape[2] == channels
        assert max(thumb.shape[:2]) <= 220
        # Shown 160 px wide (the Upload page's smallest), its other side is still >= 1 px.
        h, w = thumb.shape[:2]
        assert min(h, w) >= 1 and int(h * 160 / max(w, 160)) >= 1


@pytest.mark.parametrize("shape", [(10, 5000), (5000, 10)])
@pytest.mark.parametrize("inked", [False, True])
def test_a_strip_of_an_image_is_answered_without_a_traceback(page, shape, inked):
    strip = np.full((*shape, 3), 230, np.uint8)
    if inked:  # a dark bar across the middle of the strip
        if shape[0] < shape[1]:
            strip[:, 2000:2400] = 20
        else:
            strip[2000:2400] = 20
    at = upload(page, [("strip.png", h.png_bytes(strip), "image/png")])
    assert not at.error
    answered = bool(at.metric) or any("No digit found in strip.png" in w.value for w in at.warning)
    assert answered, ([w.value for w in at.warning], [m.value for m in at.metric])


def test_a_photo_of_a_blot_is_said_not_to_look_like_a_digit(page):
    import cv2

    photo = np.full((300, 400, 3), 235, np.uint8)
    cv2.circle(photo, (200, 150), 40, (30, 30, 30), -1, cv2.LINE_AA)   # an ink blot
    at = upload(page, [("blot.png", h.png_bytes(photo), "image/png")])
    assert any("does not look like a digit" in w.value for w in at.warning), \
        [w.value for w in at.warning]
    assert at.metric and all(m.value == "?" for m in at.metric)


def test_a_rerun_reads_no_file_again_and_a_new_upload_is_read(page, monkeypatch, good_digit):
    """A click on the page (a flag pill, the expander) reruns it whole: the chosen files'
    readings are kept, so no image is decoded or read again; a file chosen anew is read."""
    from mnist_core import preprocess  # the page imports decode_image from here on each run

    png = h.png_bytes(h.paper_digit(good_digit))
    upload(page, [("a.png", png, "image/png")])
    shown = [m.value for m in page.metric]
    decoded = []
    real = preprocess.decode_image
    monkeypatch.setattr(preprocess, "decode_image",
                        lambda raw, *a, **k: decoded.append(len(raw)) or real(raw, *a, **k))
    page.run()
    assert not page.exception and [m.value for m in page.metric] == shown
    assert decoded == []
    upload(page, [("a.png", png, "image/png")])  # chosen again: a new upload
    assert decoded == [len(png)] and [m.value for m in page.metric] == shown

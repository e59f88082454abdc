"""Share a digit by link: the encoding round-trips exactly, refuses anything malformed or
oversized with a clear ValueError, and ``?digit=`` opens the digit on Draw, Look inside and
Stress test (a bad one: a warning, no traceback)."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app_helpers as h
from mnist_core.reading import share
from mnist_core.artifacts.files import load_gallery, load_models
from mnist_core.datasets.data import to_float
from mnist_core.reading.inference import read_input

TIMEOUT = 180


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------

def test_every_uint8_image_round_trips_exactly():
    rng = np.random.default_rng(0)
    for image in (rng.integers(0, 256, (28, 28), dtype=np.uint8),   # worst case: noise
                  np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)):
        text = share.encode(image)
        assert text.startswith("v1.") and len(text) <= share.LIMITS.max_chars
        back = share.decode(text)
        assert back.dtype == np.float32 and back.shape == (28, 28)
        assert np.array_equal((back * 255).round().astype(np.uint8), image)
        assert np.array_equal(back, image.astype(np.float32) / 255)


def test_a_float_input_comes_back_as_its_rounded_image_and_same_answers(artifacts):
    gallery = load_gallery(artifacts)
    x = to_float(gallery.images[0])
    assert np.array_equal(share.decode(share.encode(x)), x)  # MNIST digits are uint8: exact
    drawn = np.clip(x * 0.937 + 0.011, 0, 1).astype(np.float32)  # not a multiple of 1/255
    back = share.decode(share.encode(drawn))
    assert np.array_equal(back, share.shared_image(drawn))
    assert np.abs(back - drawn).max() <= 0.5 / 255 + 1e-7
    models = load_models(artifacts)
    a, b = read_input(back, models), read_input(share.shared_image(drawn), models)
    for name in models:
        assert np.array_equal(a[name], b[name])


def test_only_url_safe_characters_are_used():
    text = share.encode(np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8))
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("v1." + "A" * 3000, "too long"),
    ("v2." + _b64(zlib.compress(bytes(784))), "unknown format"),
    (_b64(zlib.compress(bytes(784))), "unknown format"),
    ("v1.abc$def", "characters"),
    ("v1.A", "base64"),
    ("v1." + _b64(b"not zlib at all"), "could not be unpacked"),
    ("v1." + _b64(zlib.compress(bytes(784))[:-6]), "incomplete"),
    ("v1." + _b64(zlib.compress(bytes(784)) + b"xx"), "extra data"),
    ("v1." + _b64(zlib.compress(bytes(783))), "783 pixels"),
    ("v1." + _b64(zlib.compress(bytes(785))), "more than 784"),
    ("v1." + _b64(zlib.compress(bytes(10_000_000), 9)), "too long"),   # a zip bomb's link
    ("v1." + _b64(zlib.compress(bytes(100_000), 9)), "more than 784"),
])
def test_malformed_or_oversized_values_get_a_clear_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        share.decode(text)


def test_wrong_shape_cannot_be_shared():
    with pytest.raises(ValueError, match="28x28"):
        share.encode(np.zeros((28, 27), np.float32))


# ---------------------------------------------------------------------------------------
# The pages
# ---------------------------------------------------------------------------------------

@pytest.fixture
def digit(artifacts):
    """A shipped test digit (uint8, so its link is exact) and its link value."""
    gallery = load_gallery(artifacts)
    image = to_float(gallery.images[3])
    return image, share.encode(image)


def open_app(monkeypatch, artifacts, value: str | None) -> AppTest:
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT)
    if value is not None:
        at.query_params[share.PARAM] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _answers(artifacts, image) -> dict[str, str]:
    models = load_models(artifacts)
    probs = read_input(image, models)
    return {m.title: (str(int(probs[n].argmax())), f"{float(probs[n].max()):.0%} sure")
            for n, m in models.items()}


def test_draw_opens_the_shared_digit_with_its_answers(monkeypatch, artifacts, digit):
    image, value = digit
    at = open_app(monkeypatch, artifacts, value)
    assert [s.value for s in at.subheader] == ["A digit shared by link"]
    assert {m.label: (m.value, m.delta) for m in at.metric} == _answers(artifacts, image)
    assert not at.warning or "could not be opened" not in at.warning[0].value


def test_look_inside_and_stress_test_offer_the_shared_digit(monkeypatch, artifacts, digit):
    image, value = digit
    at = open_app(monkeypatch, artifacts, value)
    for page, key in (("app_pages/look_inside.py", "inside"),
                      ("app_pages/stress_test.py", "stress")):
        at.switch_page(page).run()
        assert not at.exception, [e.message for e in at.exception]
        control = at.get("button_group")
        source = [c for c in control if c.key == f"{key}-source"][0]
        assert source.value == "shared", page
        captions = " ".join(c for img in at.image for c in img.captions)
        assert "shared by link" in captions, page


def test_opening_a_link_directly_on_look_inside(monkeypatch, artifacts, digit):
    image, value = digit
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))
    at = AppTest.from_file(str(h.REPO / "app_pages" / "look_inside.py"),
                           default_timeout=TIMEOUT)
    at.query_params[share.PARAM] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    models = load_models(artifacts)
    p = read_input(image, models)["numpy"]
    said = [c.value for c in at.caption if "sure)" in c.value]
    assert said and f"**{int(p.argmax())}** ({p.max():.0%} sure)" in said[0]


@pytest.mark.parametrize("value", ["v1.not-a-digit", "garbage", "v1." + "A" * 5000,
                                   "v1." + _b64(zlib.compress(bytes(100_000), 9))])
def test_a_bad_link_warns_and_the_page_still_works(monkeypatch, artifacts, value):
    at = open_app(monkeypatch, artifacts, value)
    assert any("could not be opened" in w.value for w in at.warning)
    assert [t.value for t in at.title] == ["MNIST Studio"]
    assert not at.subheader  # no shared digit shown
    at.switch_page("app_pages/stress_test.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("could not be opened" in w.value for w in at.warning)


def test_a_drawing_offers_its_link(monkeypatch, artifacts):
    import sys
    import types

    from test_app_draw import FakeCanvas

    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))
    module = types.ModuleType("streamlit_drawable_canvas")
    module.st_canvas = FakeCanvas(h.one_stroke())
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.message for e in at.exception]
    links = [c.value for c in at.code if f"{share.PARAM}=v1." in c.value]
    assert len(links) == 1
    value = links[0].split(f"{share.PARAM}=", 1)[1]
    final = at.session_state["last_digit"]
    assert np.array_equal(share.decode(value), share.shared_image(final))

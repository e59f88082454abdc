"""Which digit a classroom page looks at: the last drawing, a shipped test digit, or one
drawn here. The test digit is shared by every page, so it stays put from page to page.
On a page showing clothing (:mod:`ui.dataset`) the image is a shipped test image of
Fashion-MNIST: drawings and shared links are digits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from mnist_core.datasets.data import to_float
from mnist_core.preprocess import NoDigitError, preprocess

from . import canvas, data, dataset
from . import share as share_ui

LAST_DIGIT_KEY = "last_digit"          # session state: the Draw page's last model input
TEST_ROW_KEY = "classroom_test_row"    # session state: the gallery row shown as a test digit
                                       # (one per dataset: "-fashion-mnist" added for clothing)
SMALL_CANVAS = 200                     # side of the classroom pages' canvas, in pixels
SMALL_BRUSH = 16                       # its brush: the same stroke-to-size ratio as Draw's


@dataclass
class Digit:
    image: np.ndarray     # (28, 28) float32 in [0, 1], as the models see it
    label: int | None     # the true label when known (a test digit)
    source: str           # where it came from, for captions


SOURCES = {"shared": "The shared digit", "drawing": "My last drawing", "test": "A test digit",
           "draw": "Draw one here"}


def remember_drawing(final: np.ndarray) -> None:
    """Offer ``final`` (the Draw page's 28x28 model input) to the classroom pages."""
    st.session_state[LAST_DIGIT_KEY] = final


def _row_key() -> str:
    """Session key of the page's dataset's test row (digits keep the key they had)."""
    name = dataset.current()
    return TEST_ROW_KEY if name == "mnist" else f"{TEST_ROW_KEY}-{name}"


def new_test_row() -> None:
    """Pick another random test image from the shipped gallery's random sample."""
    gallery = data.gallery()
    rows = np.flatnonzero(gallery.sample)
    if len(rows) == 0:
        rows = np.arange(len(gallery.labels))
    st.session_state[_row_key()] = int(np.random.default_rng().choice(rows))


def test_digit() -> Digit:
    """The current shared test image of the page's dataset (one is picked on first use)."""
    gallery = data.gallery()
    row = st.session_state.get(_row_key())
    if row is None or row >= len(gallery.labels):
        new_test_row()
        row = st.session_state[_row_key()]
    about = dataset.info()
    return Digit(to_float(gallery.images[row]), int(gallery.labels[row]),
                 f"{about.title} test {about.noun} #{int(gallery.index[row])}")


def pick_digit(key: str) -> Digit | None:
    """Let the user choose the digit; ``None`` while the small canvas is still empty.

    A digit opened from a ``?digit=`` link (:mod:`ui.share`) is offered first, then the
    last drawing from the Draw page, when there are; the first offered is chosen.
    """
    about = dataset.info()
    if about.name != "mnist":   # clothing: a test image; nothing here draws or shares one
        st.button(f"Another test {about.noun}", key=f"{key}-another", on_click=new_test_row,
                  icon=":material/casino:")
        return test_digit()
    share_ui.read_link()
    shared = share_ui.shared_digit()
    last = st.session_state.get(LAST_DIGIT_KEY)
    options = ((["shared"] if shared is not None else [])
               + (["drawing"] if last is not None else []) + ["test", "draw"])
    choice = st.segmented_control("Digit", options, format_func=SOURCES.get,
                                  default=options[0], required=True, key=f"{key}-source")
    if choice == "shared" and shared is not None:
        return Digit(np.asarray(shared, np.float32), None, "the digit shared by link")
    if choice == "drawing" and last is not None:
        return Digit(np.asarray(last, np.float32).reshape(28, 28), None,
                     "your last drawing on the Draw page")
    if choice == "draw":
        return _draw_here(key)
    st.button("Another test digit", key=f"{key}-another", on_click=new_test_row,
              icon=":material/casino:")
    return test_digit()


def pick_digit_or_stop(key: str, purpose: str) -> Digit:
    """:func:`pick_digit`, or a prompt to draw one "to ``purpose``" and the page stops."""
    digit = pick_digit(key)
    if digit is None:
        st.info(f"Draw a digit in the small square (or pick another source) to {purpose}.",
                icon=":material/draw:")
        st.stop()
    return digit


def _draw_here(key: str) -> Digit | None:
    image = canvas.drawing(f"{key}-canvas", side=SMALL_CANVAS, brush=SMALL_BRUSH)
    if image is None:
        return None
    try:
        stages = preprocess(image, canvas=True)
    except NoDigitError:
        return None
    return Digit(stages.final, None, "the digit drawn here")

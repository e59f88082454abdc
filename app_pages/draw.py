"""Draw: write a digit (or a number) and every model reads it as you draw."""

import time

import numpy as np
import streamlit as st

from mnist_core.reading.inference import read, read_digits
from mnist_core.preprocess import NoDigitError
from ui import canvas, components, data, digit_picker, memo, page
from ui import share as share_ui

models, names = page.start(with_user_model=True)
# How often the whole page ran and how often its drawing board alone did (a stroke, a
# button or the brush slider reruns only the board, below).
st.session_state.draw_page_runs = st.session_state.get("draw_page_runs", 0) + 1

st.session_state.setdefault("canvas_round", 0)
st.session_state.setdefault("source", "canvas")
if share_ui.read_link():  # opened from a ?digit= link: show that digit first
    st.session_state.source = "shared"


def clear_canvas() -> None:
    st.session_state.canvas_round += 1  # a new key gives an empty canvas
    st.session_state.source = "canvas"


def canvas_changed() -> None:
    st.session_state.source = "canvas"


def show_test_digit() -> None:
    digit_picker.new_test_row()
    st.session_state.source = "test"


def remembered(what: str, image: np.ndarray, reader):
    """``reader()``, the reading of ``image``, or the one this session last made of the
    same picture by the same models: a rerun that leaves the drawing alone (the brush, the
    "Wrong? It was a …" pills, the class code) need not preprocess it and run every
    model again. One reading is kept (ui.memo)."""
    return memo.remembered("draw-reading", (what, memo.digest(image), memo.model_key(models)),
                           reader)


PROMPT = ("Draw a digit from 0 to 9 in the black square. Make it fill most of the square; "
          "write a few digits side by side to read a number.")

st.title("MNIST Studio")
st.caption(f"{len(models)} models read your handwriting as you draw: "
           + ", ".join(m.title for m in models.values()) + ".")


@st.fragment
def board() -> None:
    """The canvas, its buttons and everything read from the drawing: a stroke reruns this
    only, and the title and navigation above stay as they are."""
    started = time.perf_counter()
    st.session_state.draw_board_runs = st.session_state.get("draw_board_runs", 0) + 1
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.space("small")  # room for the canvas toolbar, which floats above the canvas
        image = canvas.drawing(f"canvas-{st.session_state.canvas_round}",
                               brush=st.session_state.get("brush", 22), on_change=canvas_changed)
        st.slider("Brush width", 8, 40, 22, key="brush", width=280)
        with st.container(horizontal=True):
            st.button("Clear", key="clear", on_click=clear_canvas, icon=":material/delete:")
            st.button("Show me a test digit", key="test_digit", on_click=show_test_digit,
                      icon=":material/casino:")

    with right:
        if st.session_state.source == "test":
            digit = digit_picker.test_digit()
            st.subheader(f"{digit.source.capitalize()}: true label {names[digit.label]}")
            reading = remembered("test", digit.image,
                                 lambda: read(digit.image, models, data.far_refs()))
            components.prediction_panel(reading, models, names, key="test",
                                        true_label=digit.label)
            components.model_input_view(digit.image, caption="An MNIST test digit, exactly as "
                                                             "the models see it")
            share_ui.share_box(digit.image, "this test digit")
            return

        shared = share_ui.shared_digit()
        if st.session_state.source == "shared" and shared is not None:
            st.subheader("A digit shared by link")
            reading = remembered("shared", shared, lambda: read(shared, models, data.far_refs()))
            components.prediction_panel(reading, models, names, key="shared")
            components.model_input_view(shared, caption="The shared digit, exactly as the "
                                                        "models see it")
            st.caption("Draw in the square to read your own digit instead; Look inside and "
                       "Stress test offer the shared digit too.")
            return

        if image is None:
            st.info(PROMPT, icon=":material/draw:")
            return
        read_started = time.perf_counter()
        try:
            readings = remembered("canvas", image, lambda: read_digits(
                image, models, canvas=True, refs=data.far_refs()))
        except NoDigitError:
            st.info(PROMPT, icon=":material/draw:")
            return
        read_ms = 1000 * (time.perf_counter() - read_started)
        digit_picker.remember_drawing(readings[0].stages.final)

        if len(readings) > 1:
            st.subheader(f"{len(readings)} digits")
            components.sequence_panel(readings, models, names, key="draw")
        else:
            components.prediction_panel(readings[0], models, names, key="draw")
            from ui import class_data   # after the answers: SQLAlchemy is warmed up below
            class_data.flag_wrong(readings[0].stages.final, readings[0].probs, names,
                                  key="draw", source="flag-draw",
                                  strokes=class_data.canvas_strokes(
                                      f"canvas-{st.session_state.canvas_round}"))
            share_ui.share_box(readings[0].stages.final, "this drawing")
        timing = st.empty()

    if len(readings) == 1:  # below both columns, so a phone shows the answers first
        seen, steps = st.columns([1, 3], gap="large")
        with seen:
            components.model_input_view(readings[0].stages.final, caption="What the models see",
                                        scale=7)
        with steps:
            st.markdown("**From drawing to model input**")
            components.stages_view(readings[0].stages)
            st.caption("The red dot is the centre of mass; MNIST digits have it in the middle.")
            components.views_section(readings[0], models)
    # Filled in last, so it counts everything this rerun did on the server.
    timing.caption(f"Read by {len(models)} models in {read_ms:.0f} ms; this rerun of the "
                   f"drawing board took {1000 * (time.perf_counter() - started):.0f} ms on "
                   "the server.")


board()
# The first page shows before the flag box's database code is imported; it is by the
# time a digit is drawn.
page.warm_up("ui.class_data")

"""MNIST Studio, Draw page: write a digit (or a number) and every shipped model reads it.

Run with ``streamlit run app.py``; models come from ``$MNIST_STUDIO_ARTIFACTS`` or
``artifacts/``. The other pages live in ``pages/``, shared pieces in ``ui/``.
"""

import time

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from mnist_core.data import to_float
from mnist_core.inference import predict_all, read_digits
from mnist_core.preprocess import NoDigitError
from ui import classroom, components, data

started = time.perf_counter()
st.set_page_config(page_title="MNIST Studio · Draw", page_icon="✏️", layout="wide")
components.nav()

models = classroom.with_user_model(data.models())  # + "Your model" from Train live
names = data.class_names()

for key, default in (("canvas_round", 0), ("source", "canvas"), ("test_row", None)):
    if key not in st.session_state:
        st.session_state[key] = default


def clear_canvas() -> None:
    st.session_state.canvas_round += 1  # a new key gives an empty canvas
    st.session_state.source = "canvas"


def canvas_changed() -> None:
    st.session_state.source = "canvas"


PROMPT = ("Draw a digit from 0 to 9 in the black square. Make it fill most of the square; "
          "write a few digits side by side to read a number.")

st.title("MNIST Studio")
st.caption(f"{len(models)} models read your handwriting as you draw: "
           + ", ".join(m.title for m in models.values()) + ".")

left, right = st.columns([2, 3], gap="large")
with left:
    st.space("small")  # room for the canvas toolbar, which floats above the canvas
    canvas = st_canvas(
        stroke_width=st.session_state.get("brush", 22), stroke_color="#FFFFFF",
        background_color="#000000", height=280, width=280, drawing_mode="freedraw",
        update_streamlit=True, return_image_data=True,
        key=f"canvas-{st.session_state.canvas_round}", on_change=canvas_changed)
    st.slider("Brush width", 8, 40, 22, key="brush", width=280)
    with st.container(horizontal=True):
        st.button("Clear", key="clear", on_click=clear_canvas, icon=":material/delete:")
        if st.button("Show me a test digit", key="test_digit", icon=":material/casino:"):
            gallery = data.gallery()
            st.session_state.test_row = int(np.random.default_rng().choice(
                np.flatnonzero(gallery.sample)))
            st.session_state.source = "test"

with right:
    if st.session_state.source == "test" and st.session_state.test_row is not None:
        gallery = data.gallery()
        row = st.session_state.test_row
        label = int(gallery.labels[row])
        st.subheader(f"Test digit #{int(gallery.index[row])}: true label {names[label]}")
        batch = predict_all(models, to_float(gallery.images[row:row + 1]))
        probs = {name: p[0] for name, p in batch.items()}
        components.prediction_panel(probs, models, names, key="test", true_label=label)
        components.model_input_view(to_float(gallery.images[row]),
                                    caption="An MNIST test digit, exactly as the models see it")
        st.stop()

    image = canvas.image_data
    if image is None:
        st.info(PROMPT, icon=":material/draw:")
        st.stop()
    read_started = time.perf_counter()
    try:
        readings = read_digits(image, models)
    except NoDigitError:
        st.info(PROMPT, icon=":material/draw:")
        st.stop()
    read_ms = 1000 * (time.perf_counter() - read_started)
    st.session_state[classroom.LAST_DIGIT_KEY] = readings[0].stages.final  # classroom pages

    if len(readings) > 1:
        st.subheader(f"{len(readings)} digits")
        components.sequence_panel(readings, models, names, key="draw")
    else:
        components.prediction_panel(readings[0].probs, models, names, key="draw")
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
        components.views_section(readings[0].stages.final, models)
# Filled in last, so it counts everything this rerun did on the server.
timing.caption(f"Read by {len(models)} models in {read_ms:.0f} ms; this whole page took "
               f"{1000 * (time.perf_counter() - started):.0f} ms on the server.")

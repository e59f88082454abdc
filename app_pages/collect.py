"""Collect: "Draw a 3". Learners draw the digits 0-9 in shuffled rounds for their class's
own dataset; Save, Skip and Undo the last save; a counter per digit."""

import random

import streamlit as st

from mnist_core.classroom import class_engine, class_store as cs
from mnist_core.reading.inference import read_digit
from mnist_core.preprocess import NoDigitError
from ui import canvas, class_data, page

models, names = page.start()

st.title("Draw for your class")
st.caption("Each digit you save goes into your class's own dataset: the dashboard scores "
           "every model on it. Only the drawing, its label and your nickname (or a random "
           "id) are kept.")

top = st.columns([1, 1, 3])
with top[0]:
    code = class_data.class_code_picker("collect-class")
with top[1]:
    writer = class_data.writer_picker("collect-nickname")
if code is None:
    st.info("Type your class code (your teacher has it) to start.", icon=":material/groups:")
    st.stop()

state = st.session_state
state.setdefault("collect_round", 0)    # a new canvas key per saved or skipped digit
state.setdefault("collect_saved", [])   # (id, label) of this session's saves, for Undo
if "collect_order" not in state or state.get("collect_pos", 0) >= len(state.collect_order):
    state.collect_order = random.sample(range(10), 10)
    state.collect_pos = 0
target = state.collect_order[state.collect_pos]
canvas_key = f"collect-canvas-{state.collect_round}"


def next_prompt() -> None:
    state.collect_pos += 1
    state.collect_round += 1


def undo_last() -> None:
    if not state.collect_saved:
        return
    ident, label = state.collect_saved[-1]
    try:
        cs.delete_digit(class_data.engine(), code, ident)
    except class_engine.ClassStoreError as exc:
        state.collect_flash = ("error", class_data.failure(exc) + f" **Not undone:** your "
                                        f"last {label} is still saved.")
        return
    state.collect_saved.pop()
    state.collect_flash = ("info", f"Removed your last {label}.")


left, right = st.columns([2, 3], gap="large")
with left:
    st.subheader(f"Draw a {names[target]}")
    image = canvas.drawing(canvas_key)
    with st.container(horizontal=True):
        save = st.button("Save", key="collect-save", type="primary", icon=":material/save:",
                         disabled=image is None)   # enabled once the drawing reached us
        st.button("Skip", key="collect-skip", on_click=next_prompt, icon=":material/skip_next:")
        st.button("Undo last", key="collect-undo", on_click=undo_last, icon=":material/undo:",
                  disabled=not state.collect_saved)

if save:
    if image is not None:
        try:
            reading = read_digit(image, models, canvas=True)
        except NoDigitError:
            reading = None
            state.collect_flash = ("warning", f"No ink found: draw a {names[target]} first.")
        if reading is not None:
            ident = class_data.digit_id("collect", state.collect_round)  # a retry: same id
            digit = cs.Digit(ident, code, writer, target, "collect", reading.stages.final,
                             {n: reading.digit(n) for n in models},
                             class_data.canvas_strokes(canvas_key))
            try:
                cs.save_digit(class_data.engine(), digit)
            except class_engine.ClassStoreError as exc:
                state.collect_flash = ("error", class_data.failure(
                    exc, f"your {names[target]}; it is still on the canvas, press Save again"))
            else:
                state.collect_saved.append((ident, target))
                state.collect_flash = ("success", f"Saved your {names[target]}.")
                next_prompt()
                st.rerun()

with right:
    flash = state.pop("collect_flash", None)
    if flash:
        kind, message = flash
        getattr(st, kind)(message)
    try:
        mine = cs.count_by_label(class_data.engine(), code, writer)
        everyone = cs.count_by_label(class_data.engine(), code)
    except class_engine.ClassStoreError as exc:
        class_data.show_error(exc)
        st.stop()
    st.markdown(f"**Your digits** ({sum(mine.values())} saved, class {code}: "
                f"{sum(everyone.values())})")
    with st.container(horizontal=True, key="collect-counts"):
        for d in range(10):
            st.metric(names[d], mine[d], f"class {everyone[d]}", delta_color="off",
                      delta_arrow="off", border=True, width=86)
    st.caption(f"Round of ten: digit {state.collect_pos + 1} of 10. "
               + class_data.where_stored())

"""Collect: "Draw a 3". Learners draw the digits 0-9 in shuffled rounds for their class's
own dataset; Save, Skip and Undo the last save; a counter per digit."""

import hashlib
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
SAVED_PARAM = "saved"
# Where the learner is, kept in the address as well as in this session: a reload, or a
# reconnection to another replica after this one stopped, continues the same round with
# the same prompt, writer and digit ids (a save repeated there is stored once).
key = class_data.browser_key()
if "collect_round" not in state:
    state.collect_round = class_data.round_from_address()
    # A new session with a round in the address: the page reloaded or its server changed.
    state.collect_returning = class_data.ROUND_PARAM in st.query_params
state.setdefault("collect_saved", [])   # (id, label) of this session's saves, for Undo


def target_of(n: int) -> int:
    """The digit asked for at prompt ``n``: each round of ten asks 0-9 in an order of its
    own, from the learner's browser key (the same on any replica)."""
    return random.Random(f"{key}:{n // 10}").sample(range(10), 10)[n % 10]


pos = state.collect_round % 10
target = target_of(state.collect_round)
canvas_key = f"collect-canvas-{state.collect_round}"
# ?saved=N: prompt N's digit is stored (set only after its commit), so a page that comes
# back after its server stopped can say so even when its canvas came back empty.
last_saved = state.get("collect_last_saved", class_data.int_from_address(SAVED_PARAM))
class_data.keep_in_address(round=state.collect_round,
                           **({SAVED_PARAM: last_saved} if last_saved is not None else {}))


def next_prompt() -> None:
    state.collect_round += 1


def say(kind: str, message: str) -> None:
    """A message under the counts, for the round the learner is on (after next_prompt:
    the next one)."""
    state.collect_flash = (kind, message, state.collect_round)


def undo_last() -> None:
    if not state.collect_saved:
        return
    ident, label = state.collect_saved[-1]
    try:
        cs.delete_digit(class_data.engine(), code, ident)
    except class_engine.ClassStoreError as exc:
        say("error", class_data.failure(exc) + f" **Not undone:** your "
                                        f"last {label} is still saved.")
        return
    state.collect_saved.pop()
    say("info", f"Removed your last {label}.")


COUNTS_EVERY_S = 30   # the counts refresh on their own: the class's total grows as others save


@st.fragment(run_every=COUNTS_EVERY_S)
def counts() -> None:
    """This learner's and the class's counts. Refreshed every COUNTS_EVERY_S; a page with
    a timed fragment is also rerun by the browser as soon as its websocket reconnects
    (Streamlit's frontend does so for pages with auto-reruns), so a learner whose replica
    stopped is told at once, by the message above, whether their last digit was saved.
    The frontend forgets the timer when a run starts and learns it again when the run
    reaches this fragment, so it is drawn before the canvas and the save: a replica
    killed in between (just after a save's commit, in its rerun) would leave the page
    connected to another one, not rerun and not told (seen in the rehearsal)."""
    try:
        mine = cs.count_by_label(class_data.engine(), code, writer)
        everyone = cs.count_by_label(class_data.engine(), code)
    except class_engine.ClassStoreError as exc:
        class_data.show_error(exc)
        return
    st.markdown(f"**Your digits** ({sum(mine.values())} saved, class {code}: "
                f"{sum(everyone.values())})")
    with st.container(horizontal=True, key="collect-counts"):
        for d in range(10):
            st.metric(names[d], mine[d], f"class {everyone[d]}", delta_color="off",
                      delta_arrow="off", border=True, width=86)


left, right = st.columns([2, 3], gap="large")
with right:
    message_slot = st.container()   # filled at the end, once this run knows what to say
    counts()
    st.caption(f"Round of ten: digit {pos + 1} of 10. " + class_data.where_stored())
with left:
    st.subheader(f"Draw a {names[target]}")
    image = canvas.drawing(canvas_key)
    with st.container(horizontal=True):
        save = st.button("Save", key="collect-save", type="primary", icon=":material/save:",
                         disabled=image is None)   # enabled once the drawing reached us
        st.button("Skip", key="collect-skip", on_click=next_prompt, icon=":material/skip_next:")
        st.button("Undo last", key="collect-undo", on_click=undo_last, icon=":material/undo:",
                  disabled=not state.collect_saved)

def collect_id(reading) -> str:
    """This drawing's id: the learner's, this round's, this label's and these pixels'."""
    pixels = hashlib.sha256(reading.stages.final.tobytes()).hexdigest()[:16]
    return class_data.digit_id("collect", state.collect_round, target, pixels)


def read(image):
    try:
        return read_digit(image, models, canvas=True)
    except NoDigitError:
        return None


returning = state.pop("collect_returning", False)
if returning:
    # What happened to the drawing on the canvas, if it came back with the page: stored
    # before the connection dropped, or still to save.
    reading = read(image) if image is not None else None
    try:
        stored = reading is not None and cs.count_ids(
            class_data.engine(), [collect_id(reading)])[collect_id(reading)] > 0
    except class_engine.ClassStoreError:
        stored = False     # the message below says the database is down
    if stored:
        state.collect_saved.append((collect_id(reading), target))
        state.collect_last_saved = state.collect_round
        next_prompt()
        say("success", f"Connected again. Your {names[target]} was saved before the "
                       f"connection dropped.")
        st.rerun()
    elif reading is not None:
        say("warning", f"Connected again. Your {names[target]} is **not "
                                          f"saved** yet: it is on the canvas, press Save.")
    elif last_saved is not None and last_saved == state.collect_round - 1:
        say("success", f"Connected again. Your {names[target_of(last_saved)]} was saved "
                       f"before the connection dropped.")
    else:
        say("info", "Connected again (the page reloaded or its server "
                                       "changed). Every digit you saw \"Saved\" for is kept "
                                       "and counted here; a drawing that was not saved has to "
                                       "be drawn again.")

if save:
    if image is not None:
        reading = read(image)
        if reading is None:
            say("warning", f"No ink found: draw a {names[target]} first.")
        else:
            ident = collect_id(reading)    # the same drawing saved again: the same id
            digit = cs.Digit(ident, code, writer, target, "collect", reading.stages.final,
                             {n: reading.digit(n) for n in models},
                             class_data.canvas_strokes(canvas_key))
            try:
                new = class_data.save_digit(digit)
            except class_engine.ClassStoreError as exc:
                say("error", class_data.failure(
                    exc, f"your {names[target]}; it is still on the canvas, press Save again"))
            else:
                state.collect_saved.append((ident, target))
                state.collect_last_saved = state.collect_round
                next_prompt()
                say("success", f"Saved your {names[target]}." if new else
                               f"Saved your {names[target]} (it was already saved).")
                st.rerun()

# A message stays while the learner is on the round it was said for: a late rerun (the
# canvas sends a stroke ~0.2 s after mouse-up) must not wipe "Saved your 3." at once.
flash = state.get("collect_flash")
if flash and flash[2] == state.collect_round:
    kind, message, _ = flash
    with message_slot:
        getattr(st, kind)(message)

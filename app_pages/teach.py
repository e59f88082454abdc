"""Teach the models: train numpy, dense or cnn on the class's digits mixed with MNIST replay,
split by writer, and compare with the shipped model on the held-out writers and on MNIST."""

from pathlib import Path

import numpy as np
import streamlit as st

from mnist_core.classroom import class_engine, class_store as cs
from mnist_core.classroom import finetune
from mnist_core.classroom.live import KINDS
from mnist_core.artifacts.registry import REGISTRY
from ui import class_data, page, training, user_model

JOB_KEY = "teach_job"       # session state: this session's teaching run
MNIST_CHECK = 2000          # MNIST test images in the before/after scores (bounded cost)

models, names = page.start()

st.title("Teach the models your class's handwriting")
st.caption("Some writers' digits train, the others only measure, so the score says how the "
           "model reads handwriting it has never seen. MNIST images are mixed in so MNIST is "
           "not forgotten. Training starts from the shipped model's weights, with small steps; "
           "one training at a time on the server, as on Train live. The shipped models are "
           "never changed.")
code = class_data.class_code_picker("teach-class")
if code is None:
    st.info("Type your class code to teach the models its handwriting.",
            icon=":material/groups:")
    st.stop()
engine = class_data.engine_or_stop()
if not class_data.class_unlocked("teach-pin", code):
    st.info(f"Teaching reads every digit and nickname of class {code}: it needs the class's "
            f"PIN.", icon=":material/lock:")
    st.stop()
try:
    digits = cs.load_class(engine, code)
except class_engine.ClassStoreError as exc:
    class_data.show_error(exc)
    st.stop()
try:
    split = finetune.split_by_writer(digits.writers)
except finetune.NotEnoughWriters as exc:
    st.info(f"{exc} Collect more on the Collect page.", icon=":material/groups:")
    st.stop()
mnist = training.training_data()

st.markdown(f"**{len(split.train)} digits** from {len(split.train_writers)} writers train "
            f"({', '.join(split.train_writers)}); **{len(split.held_out)} digits** from "
            f"{', '.join(split.held_out_writers)} measure.")
job = st.session_state.get(JOB_KEY)
running = job is not None and not job.finished
name = st.segmented_control("Model", KINDS, format_func=lambda n: REGISTRY[n].title,
                            default="numpy", required=True, key="teach-model",
                            disabled=running)
epochs = st.slider("Epochs", 1, 5, 2, key="teach-epochs", disabled=running)
if st.button("Teach", key="teach-go", type="primary", disabled=running,
             icon=":material/school:"):
    data = finetune.training_set(digits.images, digits.labels, split, mnist)
    started = training.start_training(
        name, REGISTRY[name].title, data,
        finetune.train_config(name, epochs, len(data.x_train)),
        finetune.start_arch(name, models), {"class": code})
    if started is None:
        st.warning("Someone else is training on this server right now (one training at a "
                   "time). Try again in a minute.", icon=":material/schedule:")
    else:
        st.session_state[JOB_KEY] = started
        st.rerun()


training.live_progress(JOB_KEY, running, detailed=False)
taught = training.finished_model(job).renamed(user_model.CLASS, user_model.CLASS_TITLE)
held_x, held_y = digits.images[split.held_out], digits.labels[split.held_out]
pick = np.random.default_rng(0).choice(len(mnist.x_test), min(MNIST_CHECK, len(mnist.x_test)),
                                       replace=False)
(row,) = finetune.before_after({job.name: models[job.name]} if job.name in models else {},
                               {job.name: taught}, held_x, held_y, mnist.x_test[pick],
                               mnist.y_test[pick])
st.subheader(f"Before and after: {REGISTRY[job.name].title}")
training.yours_against_shipped([
    training.Versus("Held-out writers, taught", "Held-out writers, shipped",
                    row["held_out_after"], row["held_out_before"]),
    training.Versus(f"MNIST test ({len(pick):,}), taught", f"MNIST test ({len(pick):,}), shipped",
                    row["mnist_after"], row["mnist_before"])])
if note := training.temperature_note(taught):
    st.caption(note)
use, get = st.columns(2)
with use:
    if st.button("Use as \"Class model\" on the other pages", key="teach-use",
                 icon=":material/check:"):
        st.session_state[user_model.CLASS_MODEL_KEY] = taught
        st.success("The Class model now answers beside the shipped models (this session only).")
with get:
    st.download_button("Download the Class model", taught.to_bytes(),
                       file_name=f"class-{code}-{job.name}{Path(REGISTRY[job.name].filename).suffix}",
                       key="teach-download", icon=":material/download:")

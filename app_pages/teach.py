"""Teach the models: train numpy, dense or cnn on the class's digits mixed with MNIST replay,
split by writer, and compare with the shipped model on the held-out writers and on MNIST."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from mnist_core.classroom import class_store as cs
from mnist_core.classroom import finetune
from mnist_core.training.augment import NONE
from mnist_core.artifacts.registry import REGISTRY
from ui import class_data, page, training, user_model

KINDS = ("numpy", "dense", "cnn")
JOB_KEY = "teach_job"       # session state: this session's teaching run
MNIST_CHECK = 2000          # MNIST test images in the before/after table (bounded cost)
VAL_SHARE = 5               # one in this many training images validates

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
try:
    digits = cs.load_class(engine, code)
except cs.ClassStoreError as exc:
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
    base = REGISTRY[name].train
    cfg = replace(base, epochs=epochs, augment=NONE, writers_share=0.0, n_train=None,
                  lr=base.lr * finetune.DEFAULT.lr_scale,
                  n_val=max(1, len(data.x_train) // VAL_SHARE))
    # The shipped network's weights when there is one, else Train live's short one, fresh.
    arch = (finetune.warm_arch(models[name]) if name in models else None) \
        or REGISTRY[name].live_arch
    started = training.start_training(name, REGISTRY[name].title, data, cfg, arch,
                                      {"class": code})
    if started is None:
        st.warning("Someone else is training on this server right now (one training at a "
                   "time). Try again in a minute.", icon=":material/schedule:")
    else:
        st.session_state[JOB_KEY] = started
        st.rerun()


@st.fragment(run_every=1.0 if running else None)
def progress() -> None:
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    if running and job.finished:
        st.rerun()          # the whole page: the results below
    text = (f"{job.title}: epoch {min(job.epoch + 1, job.epochs)} of {job.epochs} · "
            f"{job.elapsed():.0f} s" if not job.finished else f"{job.title}: {job.status}")
    st.progress(job.fraction, text=text)


progress()
if job is None or not job.finished:
    st.stop()
if job.model is None:
    st.error(f"Training stopped with an error: {job.error}", icon="🚫")
    st.stop()

taught = job.model.renamed(user_model.CLASS, user_model.CLASS_TITLE)
held_x, held_y = digits.images[split.held_out], digits.labels[split.held_out]
pick = np.random.default_rng(0).choice(len(mnist.x_test), min(MNIST_CHECK, len(mnist.x_test)),
                                       replace=False)
rows = finetune.before_after({job.name: models[job.name]} if job.name in models else {},
                             {job.name: taught}, held_x, held_y, mnist.x_test[pick],
                             mnist.y_test[pick])
st.subheader("Before and after")
st.dataframe(pd.DataFrame([{
    "Model": REGISTRY[r["model"]].title,
    "Held-out writers, shipped": r["held_out_before"],
    "Held-out writers, taught": r["held_out_after"],
    f"MNIST test ({len(pick):,}), shipped": r["mnist_before"],
    f"MNIST test ({len(pick):,}), taught": r["mnist_after"],
} for r in rows]), hide_index=True, key="teach-results",
    column_config={c: st.column_config.NumberColumn(format="percent") for c in (
        "Held-out writers, shipped", "Held-out writers, taught",
        f"MNIST test ({len(pick):,}), shipped", f"MNIST test ({len(pick):,}), taught")})
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

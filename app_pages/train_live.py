"""Train live: train a small NumPy MLP, Keras dense network or CNN here and compare it."""

import streamlit as st

from mnist_core.classroom import live
from mnist_core.artifacts.registry import REGISTRY
from ui import page, training, user_model
from ui.charts import PLOTLY_CONFIG, confusion_figure, curves_figure

models, names = page.start()

MAX_IMAGES, MAX_EPOCHS = training.MAX_TRAIN_IMAGES, training.MAX_EPOCHS

st.title("Train a model live")
st.caption(f"Train your own network on MNIST right here, watch it learn, then compare it with "
           f"the shipped one and try it on the Draw page. To keep this server responsive, a "
           f"training uses at most {MAX_IMAGES:,} images and {MAX_EPOCHS} epochs, and only one "
           f"training runs at a time on the server; the defaults take well under a minute.")

job = st.session_state.get(training.JOB_KEY)
running = job is not None and not job.finished


def optimizer_changed() -> None:
    st.session_state["train_lr"] = live.DEFAULT_RATE[st.session_state["train_optimizer"]]


def model_changed() -> None:  # the NumPy optimizer widgets start again from Adam
    st.session_state["train_lr"] = live.DEFAULT_RATE["adam"]


st.session_state.setdefault("train_lr", live.DEFAULT_RATE["adam"])


settings_col, live_col = st.columns([2, 3], gap="large")
with settings_col:
    name = st.segmented_control("Model", live.KINDS, format_func=lambda n: REGISTRY[n].title,
                                default="numpy", required=True, key="train_model",
                                on_change=model_changed, disabled=running)
    start = live.starting_settings(name)  # the widgets start at the registry's short run
    chosen = {}
    if name in live.MLPS:
        chosen["hidden"] = st.selectbox("Hidden layers (units per layer)", live.HIDDEN,
                                        index=live.HIDDEN.index(start.hidden),
                                        key="train_hidden", disabled=running)
    else:
        chosen["filters"] = st.selectbox("Convolution filters (first block, second block)",
                                         live.FILTERS, index=live.FILTERS.index(start.filters),
                                         key="train_filters", disabled=running)
        chosen["dense"] = st.select_slider("Units in the classifier's hidden layer",
                                           live.DENSE_UNITS, value=start.dense,
                                           key="train_dense", disabled=running)
    if name == "numpy":
        with st.container(horizontal=True):
            chosen["activation"] = st.segmented_control(
                "Activation", ("relu", "sigmoid"), default="relu", required=True,
                format_func={"relu": "ReLU", "sigmoid": "sigmoid"}.get,
                key="train_activation", disabled=running)
            chosen["optimizer"] = st.segmented_control(
                "Optimizer", ("adam", "sgd"), default="adam", required=True,
                format_func={"adam": "Adam", "sgd": "plain gradient descent"}.get,
                key="train_optimizer", on_change=optimizer_changed, disabled=running)
        st.caption("The original notebooks used sigmoid units and plain gradient descent; "
                   "try them against ReLU + Adam with the same budget.")
    chosen["lr"] = st.select_slider("Learning rate", live.RATES, format_func=lambda v: f"{v:g}",
                                    key="train_lr", disabled=running)
    chosen["epochs"] = st.slider("Epochs", 1, MAX_EPOCHS, start.epochs, key="train_epochs",
                                 disabled=running)
    chosen["batch_size"] = st.select_slider("Batch size", live.BATCH_SIZES,
                                            value=start.batch_size, key="train_batch",
                                            disabled=running)
    chosen["n_train"] = st.slider("Training images", 1000, MAX_IMAGES, start.n_train,
                                  step=1000, key="train_images", disabled=running)
    chosen["augment"] = st.toggle("Augmentation (random tilts, slants, stroke widths)",
                                  value=start.augment, key="train_augment", disabled=running)
    train_clicked = st.button("Train", type="primary", key="train", disabled=running,
                              icon=":material/play_arrow:")
    slot = training.training_slot()
    if not running and slot.busy and slot.owner != training.session_id():
        st.info("Someone else is training on this server right now. One training runs at a "
                "time; you can start yours as soon as it finishes.", icon=":material/schedule:")

if train_clicked and not running:
    dataset = training.training_source()
    run = live.live_run(name, live.LiveSettings(**chosen))
    started = training.start_training(name, REGISTRY[name].title, dataset, run.train, run.arch,
                                      run.settings)
    if started is None:
        with live_col:
            st.warning("Someone else is training on this server right now (one training at "
                       "a time). Try again in a minute.", icon=":material/schedule:")
    else:
        st.session_state[training.JOB_KEY] = started
        st.rerun()

with live_col:
    training.live_progress(training.JOB_KEY, running, stop_key="stop_training",
                           curves_key="live_curves",
                           idle="Choose a model and its settings, then press **Train**.")
mine = training.finished_model(job)

# ---- results ---------------------------------------------------------------------------
shipped = models.get(job.name)
st.divider()
st.subheader(f"Your {job.title} against the shipped one")
if job.status == "stopped":
    st.info(f"You stopped the training after {len(job.history)} epoch(s); these are the "
            f"results of the model at that point.", icon=":material/stop:")
seconds = mine.metrics["train_seconds"]
training.yours_against_shipped(
    [training.Versus("Your test accuracy", f"Shipped {job.title}", mine.metrics["accuracy"],
                     shipped.metrics.get("accuracy") if shipped is not None else None,
                     f"{len(shipped.history)} epochs on the full training set"
                     if shipped is not None else None)],
    [training.Card("Training time", f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s",
                   f"{job.n_train:,} images × {len(job.history)} epochs"),
     training.Card("Parameters", f"{mine.metrics['params']:,}",
                   f"shipped: {shipped.metrics['params']:,}"
                   if shipped is not None and shipped.metrics.get("params") else None)])
st.caption(f"Test accuracy on all {mine.metrics['n']:,} MNIST test digits, which training "
           f"never saw. {training.temperature_note(mine)}")

histories = {user_model.USER: mine.history}
titles = {user_model.USER: f"Your {job.title}"}
if shipped is not None and shipped.history:
    histories[job.name] = shipped.history
    titles[job.name] = f"Shipped {job.title}"
st.plotly_chart(curves_figure(histories, titles, height=400), config=PLOTLY_CONFIG,
                key="result_curves")

left, right = st.columns(2, gap="large")
with left:
    st.markdown(f"**Your {job.title}: confusion matrix**")
    st.plotly_chart(confusion_figure(mine.metrics["confusion"], names, height=420),
                    config=PLOTLY_CONFIG, key="mine_confusion")
if shipped is not None and "confusion" in shipped.metrics:
    with right:
        st.markdown(f"**Shipped {job.title}: confusion matrix**")
        st.plotly_chart(confusion_figure(shipped.metrics["confusion"], names, height=420),
                        config=PLOTLY_CONFIG, key="shipped_confusion")


in_use = user_model.in_use(mine)
with st.container(horizontal=True, vertical_alignment="center"):
    if in_use:
        st.button("Remove from the Draw page", key="drop_model", on_click=user_model.drop,
                  icon=":material/remove_circle:")
    else:
        st.button("Use on the Draw page", key="use_model", on_click=user_model.use, args=(mine,), type="primary",
                  icon=":material/draw:")
    st.download_button("Download the model", data=mine.to_bytes,
                       file_name=f"my_{job.name}{mine.file_ext}",
                       mime="application/octet-stream", key="download_model",
                       on_click="ignore", icon=":material/download:")
if in_use:
    st.success("“Your model” now answers beside the shipped models on the Draw, Look inside, "
               "Stress test and Kaggle pages, in this browser session only.",
               icon=":material/check:")
else:
    st.caption("Your model lives in this browser session only: it is never saved on the "
               "server or shown to anyone else.")

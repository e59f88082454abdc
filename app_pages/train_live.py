"""Train live: train a small NumPy MLP, Keras dense network or CNN here and compare it."""

from dataclasses import replace

import streamlit as st

from mnist_core.training.augment import NONE, AugmentConfig
from mnist_core.artifacts.registry import REGISTRY
from mnist_core.training.train import TrainConfig
from ui import page, training, user_model
from ui.charts import PLOTLY_CONFIG, confusion_figure, curves_figure, live_figure

models, names = page.start()

KINDS = ("numpy", "dense", "cnn")
HIDDEN = ("64", "128", "256", "512", "128, 128", "256, 256", "512, 512")
FILTERS = ("8, 16", "16, 32", "32, 64")
RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
DEFAULT_RATE = {"adam": 3e-3, "sgd": 1.0}
MAX_IMAGES, MAX_EPOCHS = training.MAX_TRAIN_IMAGES, training.MAX_EPOCHS

st.title("Train a model live")
st.caption(f"Train your own network on MNIST right here, watch it learn, then compare it with "
           f"the shipped one and try it on the Draw page. To keep this server responsive, a "
           f"training uses at most {MAX_IMAGES:,} images and {MAX_EPOCHS} epochs, and only one "
           f"training runs at a time on the server; the defaults take well under a minute.")

job = st.session_state.get(training.JOB_KEY)
running = job is not None and not job.finished


def numbers(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(","))


def spelled(values: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in values)


def optimizer_changed() -> None:
    st.session_state["train_lr"] = DEFAULT_RATE[st.session_state["train_optimizer"]]


def model_changed() -> None:  # the NumPy optimizer widgets start again from Adam
    st.session_state["train_lr"] = DEFAULT_RATE["adam"]


st.session_state.setdefault("train_lr", DEFAULT_RATE["adam"])


settings_col, live_col = st.columns([2, 3], gap="large")
with settings_col:
    name = st.segmented_control("Model", KINDS, format_func=lambda n: REGISTRY[n].title,
                                default="numpy", required=True, key="train_model",
                                on_change=model_changed, disabled=running)
    start = REGISTRY[name].live_arch  # the widgets start at the registry's short run
    if name in ("numpy", "dense"):
        hidden = st.selectbox("Hidden layers (units per layer)", HIDDEN,
                              index=HIDDEN.index(spelled(start.hidden)), key="train_hidden",
                              disabled=running)
    else:
        filters = st.selectbox("Convolution filters (first block, second block)", FILTERS,
                               index=FILTERS.index(spelled(start.filters)),
                               key="train_filters", disabled=running)
        dense_units = st.select_slider("Units in the classifier's hidden layer",
                                       (64, 128, 256), value=start.dense, key="train_dense",
                                       disabled=running)
    if name == "numpy":
        with st.container(horizontal=True):
            activation = st.segmented_control(
                "Activation", ("relu", "sigmoid"), default="relu", required=True,
                format_func={"relu": "ReLU", "sigmoid": "sigmoid"}.get,
                key="train_activation", disabled=running)
            optimizer = st.segmented_control(
                "Optimizer", ("adam", "sgd"), default="adam", required=True,
                format_func={"adam": "Adam", "sgd": "plain gradient descent"}.get,
                key="train_optimizer", on_change=optimizer_changed, disabled=running)
        st.caption("The original notebooks used sigmoid units and plain gradient descent; "
                   "try them against ReLU + Adam with the same budget.")
    lr = st.select_slider("Learning rate", RATES, format_func=lambda v: f"{v:g}",
                          key="train_lr", disabled=running)
    epochs = st.slider("Epochs", 1, MAX_EPOCHS, 3, key="train_epochs", disabled=running)
    batch_size = st.select_slider("Batch size", (16, 32, 64, 128, 256, 512), value=128,
                                  key="train_batch", disabled=running)
    n_train = st.slider("Training images", 1000, MAX_IMAGES, 10_000, step=1000,
                        key="train_images", disabled=running)
    augment = st.toggle("Augmentation (random tilts, slants, stroke widths)", value=False,
                        key="train_augment", disabled=running)
    train_clicked = st.button("Train", type="primary", key="train", disabled=running,
                              icon=":material/play_arrow:")
    slot = training.training_slot()
    if not running and slot.busy and slot.owner != training.session_id():
        st.info("Someone else is training on this server right now. One training runs at a "
                "time; you can start yours as soon as it finishes.", icon=":material/schedule:")

if train_clicked and not running:
    dataset = training.training_data()
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, n_train=n_train,
                      augment=AugmentConfig() if augment else NONE)
    # The registry's short-run architecture, with what the widgets above set.
    spec = REGISTRY[name]
    if name in ("numpy", "dense"):
        settings = {"hidden": hidden}
        arch = replace(spec.live_arch, hidden=numbers(hidden))
    else:
        settings = {"filters": filters, "dense": dense_units}
        arch = replace(spec.live_arch, filters=numbers(filters), dense=dense_units)
    if name == "numpy":
        arch = replace(arch, activation=activation, optimizer=optimizer)
        settings.update(activation=activation, optimizer=optimizer)
    settings.update(lr=lr, epochs=epochs, batch_size=batch_size, n_train=n_train,
                    augment=augment)
    started = training.start_training(name, REGISTRY[name].title, dataset, cfg, arch, settings)
    if started is None:
        with live_col:
            st.warning("Someone else is training on this server right now (one training at "
                       "a time). Try again in a minute.", icon=":material/schedule:")
    else:
        st.session_state[training.JOB_KEY] = started
        st.rerun()


def stop_job() -> None:
    current = st.session_state.get(training.JOB_KEY)
    if current is not None:
        current.stop.set()


@st.fragment(run_every=1.0 if running else None)
def live_view(was_running: bool) -> None:
    """Progress and curves, polled every second while the background thread trains."""
    job = st.session_state.get(training.JOB_KEY)
    if job is None:
        st.info("Choose a model and its settings, then press **Train**.",
                icon=":material/model_training:")
        return
    if was_running and job.finished:
        st.rerun()  # the whole page: unlock the settings and show the results
    if job.finished:
        text = {"done": f"{job.title} trained in {job.seconds:.0f} s.",
                "stopped": f"Stopped after {len(job.history)} epoch(s), {job.seconds:.0f} s.",
                "failed": "Training failed."}[job.status]
    elif job.status == "evaluating":
        text = f"Scoring on the test set… {job.elapsed():.0f} s"
    elif job.stop.is_set():
        text = "Stopping after this batch…"
    elif job.status == "starting":
        text = (f"Starting the training process, preparing {job.n_train:,} images… "
                f"{job.elapsed():.0f} s")
    else:
        text = (f"Training {job.title}: epoch {job.epoch + 1} of {job.epochs}, batch "
                f"{job.step} of {job.steps} · {job.elapsed():.0f} s")
    st.progress(job.fraction, text=text)
    if not job.finished:
        st.button("Stop", key="stop_training", on_click=stop_job, icon=":material/stop:",
                  disabled=job.stop.is_set())
    st.plotly_chart(live_figure(list(job.batches), list(job.history), job.epochs,
                                 user_model.USER),
                    config=PLOTLY_CONFIG, key="live_curves")


with live_col:
    live_view(running)

if job is None or not job.finished:
    st.stop()

# ---- results ---------------------------------------------------------------------------
if job.status == "failed" or job.model is None:
    st.error(f"Training stopped with an error: {job.error}", icon="🚫")
    st.stop()

mine = job.model
shipped = models.get(job.name)
st.divider()
st.subheader(f"Your {job.title} against the shipped one")
if job.status == "stopped":
    st.info(f"You stopped the training after {len(job.history)} epoch(s); these are the "
            f"results of the model at that point.", icon=":material/stop:")
acc = mine.metrics["accuracy"]
cols = st.columns(4)
if shipped is not None and "accuracy" in shipped.metrics:
    ref = shipped.metrics["accuracy"]
    cols[0].metric("Your test accuracy", f"{acc:.2%}",
                   f"{100 * (acc - ref):+.2f} points vs shipped", border=True)
    cols[1].metric(f"Shipped {job.title}", f"{ref:.2%}",
                   f"{len(shipped.history)} epochs on the full training set",
                   delta_color="off", delta_arrow="off", border=True)
else:
    cols[0].metric("Your test accuracy", f"{acc:.2%}", border=True)
    cols[1].metric(f"Shipped {job.title}", "not shipped", border=True)
seconds = mine.metrics["train_seconds"]
cols[2].metric("Training time", f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s",
               f"{job.n_train:,} images × {len(job.history)} epochs", delta_color="off",
               delta_arrow="off", border=True)
cols[3].metric("Parameters", f"{mine.metrics['params']:,}",
               f"shipped: {shipped.metrics['params']:,}"
               if shipped is not None and shipped.metrics.get("params") else None,
               delta_color="off", delta_arrow="off", border=True)
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

"""Compare models: test scores, size and speed, confusion matrices and the images they
miss, for the digits' models or the clothing's (``?data=fashion``)."""

import numpy as np
import pandas as pd
import streamlit as st

from mnist_core.artifacts.registry import registry_for
from ui import components, data, dataset, page
from ui.charts import CONFUSION_MODES, PLOTLY_CONFIG, confusion_figure

models, names = page.start(datasets=True)
manifest = data.manifest()
about = dataset.info()
registry = registry_for(about.name)

st.title("Compare models")
n_test = next((m.metrics.get("n") for m in models.values() if m.metrics.get("n")), None)
scored = f"Scored on {n_test:,} held-out test images" if n_test else "Test-set scores"
st.caption(f"{scored} of {about.title}. Latency is one image "
           "through the app's fast path, timed when the models were trained.")

scores = pd.DataFrame([{
    "Model": m.title,
    "Test accuracy": m.metrics.get("accuracy"),
    "Test loss": m.metrics.get("loss"),
    "Parameters": m.metrics.get("params"),
    "File size (MB)": (m.metrics["file_bytes"] / 2**20) if m.metrics.get("file_bytes") else None,
    "Training time (min)": ((m.metrics["train_seconds"] / 60)
                            if m.metrics.get("train_seconds") else None),
    "1 image (ms)": m.metrics.get("latency_single_ms"),
    "10,000 images (ms)": m.metrics.get("latency_10k_ms"),
} for m in models.values()])
st.dataframe(scores, hide_index=True, key="scores", column_config={
    "Test accuracy": st.column_config.NumberColumn(format="percent"),
    "Test loss": st.column_config.NumberColumn(format="%.4f"),
    "Parameters": st.column_config.NumberColumn(format="localized"),
    "File size (MB)": st.column_config.NumberColumn(format="%.2f"),
    "Training time (min)": st.column_config.NumberColumn(format="%.1f"),
    "1 image (ms)": st.column_config.NumberColumn(format="%.2f"),
    "10,000 images (ms)": st.column_config.NumberColumn(format="%.0f"),
})

choice = st.segmented_control("Model", list(models), default=next(iter(models)), required=True,
                              format_func=lambda n: models[n].title, key="model")
model = models[choice]
if choice in registry:
    st.caption(registry[choice].blurb)
confusion = np.asarray(model.metrics.get("confusion") or np.zeros((10, 10)), np.int64)

matrix, per_class = st.columns([3, 2], gap="large")
with matrix:
    st.subheader(f"Confusion matrix: {model.title}")
    mode = st.segmented_control("Show", CONFUSION_MODES, default=CONFUSION_MODES[0],
                                required=True, key="confusion_mode")
    st.plotly_chart(confusion_figure(confusion, names, mode), config=PLOTLY_CONFIG,
                    key="confusion")
with per_class:
    st.subheader("Per class")
    support = confusion.sum(axis=1)
    st.dataframe(pd.DataFrame({
        "Class": list(names),
        "Precision": model.metrics.get("precision") or [None] * 10,
        "Recall": model.metrics.get("recall") or [None] * 10,
        "F1": model.metrics.get("f1") or [None] * 10,
        "Test images": support,
        "Missed": support - np.diag(confusion),
    }), hide_index=True, key="per_class", height=35 * 11 + 3, column_config={
        "Precision": st.column_config.NumberColumn(format="%.3f"),
        "Recall": st.column_config.NumberColumn(format="%.3f"),
        "F1": st.column_config.NumberColumn(format="%.3f"),
    })

gallery = data.gallery()
st.subheader(f"Test {about.noun}s {model.title} got wrong")
if choice not in gallery.preds:
    st.info(f"The shipped gallery has no answers from {model.title}; rebuild the artifacts.")
else:
    wrong = np.flatnonzero(gallery.preds[choice] != gallery.labels)
    missed = int(confusion.sum() - np.trace(confusion))
    st.caption(f"{len(wrong)} of its {missed:,} test-set mistakes are in the shipped gallery. "
               f"✗ marks every model that got the {about.noun} wrong.")
    if len(wrong):
        components.gallery_table(gallery, wrong, models, names, key="wrong")

st.subheader(f"{about.noun.capitalize()}s the models disagree on")
answered = [n for n in models if n in gallery.preds]
if len(answered) < 2:
    st.info("Only one model is shipped, so there is nothing to disagree about.")
    st.stop()
preds = np.stack([gallery.preds[n] for n in answered])
split = np.flatnonzero((preds != preds[0]).any(axis=0))
st.caption(f"{len(split)} of the {len(gallery.labels)} gallery {about.noun}s get different answers "
           "from different models.")
if len(split):
    components.gallery_table(gallery, split, models, names, key="disagree")

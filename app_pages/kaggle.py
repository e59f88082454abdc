"""Kaggle: predict Digit Recognizer's test.csv with any model and download submission.csv."""

import io

import numpy as np
import pandas as pd
import streamlit as st

from mnist_core.classroom import kaggle
from mnist_core import worker
from mnist_core.datasets.common import DataError
from ui import page, pictures
from ui.text import plain
from ui.charts import PLOTLY_CONFIG, counts_figure

models, names = page.start(with_user_model=True)

st.title("Kaggle Digit Recognizer")
st.caption("Upload the competition's `test.csv` (28,000 unlabeled digits, columns "
           "`pixel0`…`pixel783`), let a model read every digit, and download a "
           "`submission.csv` (`ImageId,Label`) ready to submit.")
LIMITS = kaggle.KAGGLE.csv
st.caption(f"Limits on one upload: {LIMITS.max_rows:,} rows, {LIMITS.max_bytes // 2**20} MB "
           f"of CSV once unpacked, {LIMITS.max_line_bytes // 1024} KB a line, "
           f"{LIMITS.max_cell_bytes} characters a value, {LIMITS.max_cpu_s:g} s of reading.")

upload = st.file_uploader("Kaggle's test.csv, plain or zipped (.zip or .gz)",
                          type=["csv", "zip", "gz"], key="kaggle_upload")
if upload is None:
    st.info("Get `test.csv` from kaggle.com/competitions/digit-recognizer/data. It is 51 MB, "
            "over this app's 20 MB upload limit, so upload it zipped: `test.csv.zip`, "
            "`test.csv.gz`, or the competition's `digit-recognizer.zip` as it comes.",
            icon=":material/upload_file:")
    st.stop()

# Parse once per uploaded file, not on every rerun.
parsed = st.session_state.get("kaggle_parsed")
if parsed is None or parsed[0] != upload.file_id:
    try:
        with st.spinner(f"Reading {plain(upload.name)}…"):
            images, _ = kaggle.read_upload(upload.name, upload.getvalue())
        parsed = (upload.file_id, images, None)
    except DataError as exc:
        parsed = (upload.file_id, None, str(exc))
    st.session_state["kaggle_parsed"] = parsed
    st.session_state.pop("kaggle_result", None)
_, images, problem = parsed
if problem is not None:
    st.error(f"**This is not a Digit Recognizer test file.** {plain(problem)}\n\nExpected: a header "
             f"`pixel0,…,pixel783` (optional) and one row of 784 numbers from 0 to 255 per "
             f"digit, with no `label` column.", icon="🚫")
    st.stop()
if len(images) == 0:
    st.error(f"{plain(upload.name)} holds no digits.", icon="🚫")
    st.stop()

note = "" if len(images) == 28_000 else " (Kaggle's test.csv has 28,000)"
st.success(f"Read {len(images):,} digits from {plain(upload.name)}{note}.",
           icon=":material/check:")
first = [pictures.digit_picture(img / 255.0, 2) for img in images[:16]]
st.image(pictures.grid(first, cols=16, pad=3), caption="The first digits of the file")

name = st.segmented_control("Model", list(models), format_func=lambda n: models[n].title,
                            default="cnn" if "cnn" in models else next(iter(models)),
                            required=True, key="kaggle_model")
acc = models[name].metrics.get("accuracy")
if acc is not None:
    st.caption(f"{models[name].title} scored {acc:.2%} on the MNIST test set; Kaggle's "
               f"digits are MNIST digits, so expect about the same.")

key = (upload.file_id, name)
done = st.session_state.get("kaggle_result", (None,))[0] == key
if st.button(f"Predict {len(images):,} digits with {models[name].title}",
             type="secondary" if done else "primary", key="kaggle_predict",
             icon=":material/play_arrow:"):
    bar = st.progress(0.0, text="Predicting…")
    try:
        # In a worker process: the batch's engine (ONNX Runtime) never enters the server.
        csv = worker.submission_in_worker(
            models[name], images,
            progress=lambda f: bar.progress(f, text=f"Predicting… {f:.0%}"))
    except Exception as exc:  # noqa: BLE001 - e.g. out of memory: a message, no traceback
        bar.empty()
        st.error(f"Prediction failed: {type(exc).__name__}: {exc}", icon="🚫")
        st.stop()
    st.session_state["kaggle_result"] = (key, csv)
    st.rerun()  # redraw with the download, the Predict button no longer the primary one

result = st.session_state.get("kaggle_result")
if result is None or result[0] != key:
    st.stop()
csv = result[1]
table = pd.read_csv(io.StringIO(csv))
counts = np.bincount(table["Label"].to_numpy(), minlength=10)
st.download_button("Download submission.csv", data=csv, file_name="submission.csv",
                   mime="text/csv", key="kaggle_download", type="primary", on_click="ignore",
                   icon=":material/download:")
left, right = st.columns([1, 2], gap="large")
left.dataframe(table.head(10), hide_index=True, key="kaggle_preview")
right.plotly_chart(counts_figure(counts, names), config=PLOTLY_CONFIG,
                   key="kaggle_counts")

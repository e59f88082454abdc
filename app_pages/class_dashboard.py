"""Class dashboard: starting a class, and, with its PIN, the class's own digits and how well
each model reads them. Counts per label and writer, accuracy, confusion matrix and misses
per model, per-writer accuracy, export, import and delete."""

import numpy as np
import pandas as pd
import streamlit as st

from mnist_core.classroom import class_archive, class_engine, class_store as cs
from mnist_core.datasets.data import to_float
from mnist_core.insight.evaluate import score
from mnist_core.models.views import predict_views
from ui import class_data, page, pictures
from ui.text import plain
from ui.charts import CONFUSION_MODES, PLOTLY_CONFIG, confusion_figure, counts_figure

LIMITS = class_engine.DEFAULT    # the store's limits on an import, stated by the uploader
MAX_MISSES = 60      # misses shown in the table; the rest are counted
CACHE_SECONDS = 5    # a dashboard left open picks up new saves within this

models, names = page.start(with_user_model=True)

st.title("Our class's handwriting")
with st.expander("Start a new class (teachers)", icon=":material/add:"):
    class_data.new_class_form("dashboard-new", "dashboard-class")
class_data.started_note()
code = class_data.class_code_picker("dashboard-class", allow_closed=True)
if code is None:
    st.info("Type your class's code to see its digits, or start a new class above.",
            icon=":material/groups:")
    st.caption(class_data.WHAT_IS_PUBLIC)
    st.stop()
engine = class_data.engine_or_stop()
if not class_data.class_unlocked("dashboard-pin", code):
    st.info(f"Class {code}'s digits, nicknames and scores are shown only with its PIN.",
            icon=":material/lock:")
    st.caption(class_data.WHAT_IS_PUBLIC)
    st.stop()
if not class_data.set_pin_form("dashboard-set-pin", code):
    st.stop()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=8)
def load(code: str, url: str) -> cs.ClassDigits:
    return cs.load_class(engine, code)


@st.cache_data(show_spinner="Reading the class's digits…", max_entries=8)
def read(images: np.ndarray, model_keys: tuple, _models) -> dict[str, np.ndarray]:
    """Each model's ``(N, 10)`` probabilities, read as the app reads a digit (its views).
    ``model_keys``: (name, id) pairs, so one session's own model never answers for another's."""
    return predict_views(_models, to_float(images))


try:
    digits = load(code, str(engine.url))
except class_engine.ClassStoreError as exc:
    class_data.show_error(exc)
    st.stop()
st.caption(class_data.where_stored())
if st.button("Refresh", key="dashboard-refresh", icon=":material/refresh:"):
    load.clear()
    st.rerun()
def teacher_tools() -> None:
    """Export, import and delete: the class's PIN was typed above."""
    st.divider()
    st.subheader("Teacher")
    get, put, drop = st.columns(3, gap="large")
    with get:
        st.download_button(f"Download class {code} (zip)", class_archive.export_zip(digits, code),
                           file_name=f"class-{code}.zip", mime="application/zip",
                           key="dashboard-export", icon=":material/download:")
        st.caption("MNIST IDX files (gzip), mnist_train.csv / mnist_test.csv and mnist.npz, "
                   "test split by writer: `python -m mnist_core evaluate --data FOLDER` "
                   "reads the unzipped folder.")
    with put:
        upload = st.file_uploader("Import an export into this class", type=["zip"],
                                  key="dashboard-import")
        st.caption(f"An export zip of at most {LIMITS.max_import_bytes // 10**6} MB and "
                   f"{LIMITS.max_import_digits:,} digits (class.json at most "
                   f"{LIMITS.max_import_json_bytes // 2**20} MB unpacked).")
        if upload is not None and st.button("Import", key="dashboard-import-go"):
            try:
                added, had = class_archive.import_export(engine, upload.getvalue(), code)
            except class_archive.ImportFileError as exc:
                st.error(f"{plain(upload.name)}: {exc} Nothing was imported.",
                         icon=":material/error:")
            except class_engine.ClassStoreError as exc:
                class_data.show_error(exc, f"the digits of {plain(upload.name)}")
            else:
                load.clear()
                st.success(f"Imported {added} digits into class {code} ({had} were already "
                           f"there).")
    with drop:
        sure = st.checkbox(f"Yes, delete all {len(digits)} digits of class {code}",
                           key="dashboard-delete-sure")
        if st.button("Delete class data", key="dashboard-delete", disabled=not sure,
                     type="primary", icon=":material/delete_forever:"):
            try:
                gone = cs.delete_class(engine, code)
            except class_engine.ClassStoreError as exc:
                class_data.show_error(exc)
            else:
                load.clear()
                st.success(f"Deleted {gone} digits of class {code}.")


if not len(digits):
    st.info(f"Class {code} has no digits yet. Draw some on Collect, or use \"Wrong? It was "
            f"a …\" under the answers on Draw and Upload.", icon=":material/draw:")
    teacher_tools()
    st.stop()

y = digits.labels.astype(np.int64)
probs = read(digits.images, tuple((n, id(m)) for n, m in models.items()), models)
scores = {n: score(p, y) for n, p in probs.items()}
writers = sorted(set(digits.writers))

st.subheader(f"{len(digits)} digit{'s' * (len(digits) != 1)} from {len(writers)} "
             f"writer{'s' * (len(writers) != 1)}")
per_label, per_writer = st.columns([3, 2], gap="large")
with per_label:
    counts = counts_figure(np.bincount(y, minlength=10), names, height=260)
    counts.update_layout(xaxis_title_text="label the writer gave")   # not a prediction here
    st.plotly_chart(counts, config=PLOTLY_CONFIG, key="dashboard-counts")
with per_writer:
    w = np.array(digits.writers)
    table = pd.DataFrame({"Writer": writers, "Digits": [int((w == n).sum()) for n in writers]})
    for name, p in probs.items():
        right = p.argmax(1) == y
        table[models[name].title] = [float(right[w == n].mean()) for n in writers]
    table["Mean"] = table[[models[n].title for n in probs]].mean(axis=1)
    st.markdown("**Whose handwriting is hardest** (accuracy per writer)")
    st.dataframe(table.sort_values("Mean"), hide_index=True, key="dashboard-writers",
                 column_config={c: st.column_config.NumberColumn(format="percent")
                                for c in [*(models[n].title for n in probs), "Mean"]})

st.subheader("Which model reads this class best")
top = max(s["accuracy"] for s in scores.values())
best = [n for n in scores if scores[n]["accuracy"] == top]
cols = st.columns(len(scores))
for col, (name, s) in zip(cols, scores.items()):
    col.metric(models[name].title, f"{s['accuracy']:.1%}",
               f"{int(round(s['accuracy'] * len(y)))} of {len(y)} right", delta_color="off",
               delta_arrow="off", border=True)
st.success(" and ".join(f"**{models[n].title}**" for n in best)
           + (" read" if len(best) > 1 else " reads") + f" class {code}'s digits best: "
           f"{top:.1%}.", icon=":material/trophy:")

matrix, misses = st.columns([2, 3], gap="large")
with matrix:
    which = st.selectbox("Confusion matrix of", list(scores), key="dashboard-model",
                         format_func=lambda n: models[n].title)
    mode = st.segmented_control("Show", CONFUSION_MODES, default=CONFUSION_MODES[0],
                                required=True, key="dashboard-confusion-mode")
    st.plotly_chart(confusion_figure(scores[which]["confusion"], names, mode, height=420),
                    config=PLOTLY_CONFIG, key="dashboard-confusion")
with misses:
    wrong = np.flatnonzero(np.any([p.argmax(1) != y for p in probs.values()], axis=0))
    st.markdown(f"**Misses**: {len(wrong)} digits at least one model read wrong")
    if len(wrong):
        shown = wrong[:MAX_MISSES]
        st.dataframe(pd.DataFrame({
            "Digit": [pictures.data_url(digits.images[i], 2) for i in shown],
            "Label": [names[y[i]] for i in shown],
            **{models[n].title: [names[int(p[i].argmax())] for i in shown]
               for n, p in probs.items()},
            "Writer": [digits.writers[i] for i in shown],
            "From": [digits.sources[i] for i in shown],
        }), hide_index=True, key="dashboard-misses", row_height=60,
            column_config={"Digit": st.column_config.ImageColumn(width="small")})
        if len(wrong) > MAX_MISSES:
            st.caption(f"The first {MAX_MISSES} of {len(wrong)} shown.")

teacher_tools()

"""Honest confidence: does "95% sure" mean right 95% of the time? Reliability diagrams and
calibration errors of every model, before and after its temperature, on the dataset's test
set and, for digits, on real handwriting (all precomputed by ``python -m mnist_core
calibrate``); digits' models or clothing's (``?data=fashion``)."""

import pandas as pd
import streamlit as st

from mnist_core.insight.calibration import HANDWRITING, MNIST_TEST
from ui import dataset, page
from ui.charts import PLOTLY_CONFIG, model_color, reliability_figure

models, _ = page.start(datasets=True)
about = dataset.info()
noun = about.noun
# MNIST_TEST is the key of the dataset's own test set, whichever dataset it is.
SET_TITLES = {MNIST_TEST: f"{about.title} test set", HANDWRITING: "Real handwriting"}

st.title("Honest confidence")
st.caption("A model that says “90% sure” should be right 9 times out of 10 when it says so. "
           f"Each diagram sorts {noun}s by how sure the model was and plots how often it was "
           "right: on the dotted diagonal the percentages are honest; below it the model is "
           "overconfident, above it underconfident. Grey dashed: the network as trained; "
           "coloured: with its temperature, which is what the app's percentages use. The "
           f"calibration error (ECE) is the average gap, weighted by how many {noun}s each "
           "point holds (bigger markers hold more).")

calibrated = {n: m.metrics["calibration"] for n, m in models.items()
              if m.metrics.get("calibration")}
if not calibrated:
    st.info("The shipped models carry no calibration yet: run "
            "`python -m mnist_core calibrate` to fit and write it.",
            icon=":material/info:")
    st.stop()
uncalibrated = [models[n].title for n in models if n not in calibrated]
if uncalibrated:
    st.warning(f"No calibration shipped for {', '.join(uncalibrated)}: its percentages are "
               "the network's own.", icon=":material/warning:")


def _gap(curves: dict | None) -> str:
    if curves is None:
        return "—"
    return f"{curves['ece_before']:.2%} → {curves['ece_after']:.2%}"


st.dataframe(pd.DataFrame([{
    "Model": models[n].title,
    "Temperature": rec["temperature"],
    "Validation NLL": f"{rec['val']['nll_before']:.4f} → {rec['val']['nll_after']:.4f}",
    "ECE, validation": _gap(rec["val"]),
    f"ECE, {about.title} test": _gap(rec["sets"].get(MNIST_TEST)),
    **({"ECE, real handwriting": _gap(rec["sets"].get(HANDWRITING))}
       if about.name == "mnist" else {}),
} for n, rec in calibrated.items()]), hide_index=True, key="calibration_table",
    column_config={"Temperature": st.column_config.NumberColumn(format="%.3f")})
st.caption("The temperature divides each network's logits. It is fitted on the validation "
           "split the model was trained beside (never the test set) by minimising its "
           "negative log-likelihood (NLL). Below 1, the network was less sure than it should "
           "have been (training with label smoothing does that) and its percentages are "
           "sharpened; above 1, softened. The answer itself never changes.")

for i, (name, rec) in enumerate(calibrated.items()):
    st.subheader(models[name].title)
    sets = [s for s in SET_TITLES if s in rec["sets"]]
    if not sets:  # a model trained live and packaged: its worker fitted T on validation only
        st.caption(f"Temperature {rec['temperature']:.3f}, fitted on "
                   f"{rec['val'].get('n', 0):,} validation {noun}s; no reliability diagrams "
                   "were computed for this model (`python -m mnist_core calibrate` adds them).")
        continue
    mnist, hand = rec["sets"].get(MNIST_TEST), rec["sets"].get(HANDWRITING)
    read = ([f"{about.title} test: {mnist['n']:,} {noun}s read once"] if mnist else []) + (
        [f"real handwriting: {hand['n']:,} digits ({', '.join(hand.get('sets', []))}) read "
         "as the app reads them (preprocessed, answers averaged over the model's views)"]
        if hand else [])
    text = "; ".join(read)
    st.caption(f"Temperature {rec['temperature']:.3f}. {text[:1].upper()}{text[1:]}.")
    for col, set_name in zip(st.columns(len(sets)), sets):
        curves = rec["sets"][set_name]
        col.plotly_chart(
            reliability_figure(curves["before"], curves["after"], model_color(name, i),
                               f"{SET_TITLES[set_name]} · ECE {_gap(curves)}"),
            config=PLOTLY_CONFIG, key=f"reliability-{name}-{set_name}")

"""Training curves: loss and accuracy per epoch of every shipped model, train and validation."""

import pandas as pd
import streamlit as st

from ui import page
from ui.charts import PLOTLY_CONFIG, curves_figure

models, _ = page.start(datasets=True)

st.title("Training curves")
st.caption("Per epoch, from the history shipped with each model. Dashed lines are the "
           "(augmented) training data, solid lines the held-out validation split.")

with_history = [n for n, m in models.items() if m.history]
if not with_history:
    st.info("The shipped models have no training history; rebuild the artifacts to record it.")
    st.stop()
without = [models[n].title for n in models if n not in with_history]
if without:
    st.warning(f"No training history shipped for {', '.join(without)}.")

with st.container(horizontal=True, vertical_alignment="bottom"):
    shown = st.multiselect("Models", with_history, default=with_history,
                           format_func=lambda n: models[n].title, key="curve_models")
    log_loss = st.toggle("Log-scale loss", key="log_loss")
if not shown:
    st.info("Pick at least one model to plot.")
    st.stop()

st.plotly_chart(curves_figure({n: models[n].history for n in shown},
                              {n: models[n].title for n in shown}, log_loss=log_loss),
                config=PLOTLY_CONFIG, key="curves")

summary = []
for name in shown:
    history = models[name].history
    best = max(history, key=lambda e: e["val_accuracy"])
    summary.append({
        "Model": models[name].title,
        "Epochs": len(history),
        "Best validation accuracy": best["val_accuracy"],
        "at epoch": best["epoch"],
        "Final train loss": history[-1]["loss"],
        "Final validation loss": history[-1]["val_loss"],
        "Seconds per epoch": sum(e["seconds"] for e in history) / len(history),
    })
st.dataframe(pd.DataFrame(summary), hide_index=True, key="curve_summary", column_config={
    "Best validation accuracy": st.column_config.NumberColumn(format="percent"),
    "Final train loss": st.column_config.NumberColumn(format="%.4f"),
    "Final validation loss": st.column_config.NumberColumn(format="%.4f"),
    "Seconds per epoch": st.column_config.NumberColumn(format="%.1f"),
})

"""Shared pieces of the MNIST Studio Streamlit app.

* :mod:`ui.data`: the shipped artifacts, loaded once and cached; errors become ``st.error``.
* :mod:`ui.charts`: plotly figures (probability bars, confusion heatmap, training curves),
  built from plain dicts so a rerun spends about a millisecond on each.
* :mod:`ui.components`: the navigation, prediction panel, "what the model sees" and
  preprocessing-stage views and the gallery table every page reuses.

All machine-learning and image work happens in :mod:`mnist_core`; this package only shows it.
"""

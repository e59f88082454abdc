"""Streamlit pieces shared by the pages; all machine-learning and image work is in
:mod:`mnist_core`, this package only runs and shows it.

* :mod:`ui.page`: every page's prologue (its models and class names).
* :mod:`ui.data`: the shipped artifacts, loaded once and cached; errors become ``st.error``.
* :mod:`ui.canvas`: the drawing canvas, configured once.
* :mod:`ui.components`: the prediction panel, "what the models see", how a digit was read
  (stages and views), several digits at once, the gallery table.
* :mod:`ui.charts`: plotly figures (probability bars, confusion heatmap, training curves,
  sweeps, label counts, live training), built from plain dicts.
* :mod:`ui.pictures`: images for display (crisp upscales, colour maps, grids, frames).
* :mod:`ui.digit_picker`: the digit a classroom page looks at (last drawing, test digit,
  one drawn here).
* :mod:`ui.user_model`: "Your model" from Train live, kept in this browser session.
* :mod:`ui.training`: Train live's background training (one per server at a time).

Pages are registered once, in ``app.py`` (``st.navigation``).
"""

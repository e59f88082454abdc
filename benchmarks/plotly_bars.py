"""Today's probability bars as they were before issue 21: a plotly figure of one panel per
model. Kept only so ``plotly_remount.py`` can measure the app's HTML bars against them in the
same run; the app draws its bars with :func:`ui.charts.probability_bars`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ui.charts import GRID, MUTED, _axis_id, _figure, model_color


def probability_figure(probs: Mapping[str, np.ndarray], titles: Mapping[str, str],
                       class_names: Sequence[str], height: int = 230) -> go.Figure:
    """One panel of 10 bars per model, side by side, all on the same 0-1 axis.

    ``probs``: model name -> ``(10,)`` probabilities. Each model's top class is drawn in
    the model's colour with its percentage; the rest are muted.
    """
    names = list(probs)
    n = max(len(names), 1)
    gap = 0.035 if n > 1 else 0.0
    width = (1 - gap * (n - 1)) / n
    labels = list(class_names)
    data, annotations = [], []
    layout: dict = {
        "height": height, "showlegend": False, "bargap": 0.18,
        "margin": {"l": 44, "r": 8, "t": 48, "b": 28},
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
        "hoverlabel": {"font": {"size": 14}},
    }
    for i, name in enumerate(names):
        p = np.asarray(probs[name], np.float64).reshape(-1)
        top = int(p.argmax())
        ax = _axis_id(i)
        color = model_color(name, i)
        x0 = i * (width + gap)
        title = titles.get(name, name)
        data.append({
            "type": "bar", "x": labels, "y": np.round(p, 4).tolist(),
            "xaxis": f"x{ax}", "yaxis": f"y{ax}", "name": title,
            "marker": {"color": [color if k == top else MUTED for k in range(len(p))]},
            "text": [f"{v:.0%}" if k == top else "" for k, v in enumerate(p)],
            "textposition": "outside", "cliponaxis": False, "constraintext": "none",
            "textfont": {"size": 13, "color": color},
            "hovertemplate": "%{x}: %{y:.1%}<extra>" + title + "</extra>",
        })
        layout[f"xaxis{ax}"] = {"domain": [x0, x0 + width], "anchor": f"y{ax}",
                                "type": "category", "fixedrange": True, "dtick": 1,
                                # Upright and small enough that 0-9 fit under each of
                                # four panels on a phone (Plotly would turn them sideways).
                                "tickfont": {"size": 10}, "tickangle": 0, "showgrid": False}
        layout[f"yaxis{ax}"] = {"range": [0, 1], "anchor": f"x{ax}", "fixedrange": True,
                                "tickformat": ".0%", "tickvals": [0, 0.5, 1],
                                "showticklabels": i == 0, "gridcolor": GRID, "zeroline": False}
        annotations.append({"text": f"<b>{title}</b>", "x": x0 + width / 2, "y": 1.0,
                            "xref": "paper", "yref": "paper", "xanchor": "center",
                            "yanchor": "bottom", "yshift": 22, "showarrow": False,
                            "font": {"size": 14}})
    layout["annotations"] = annotations
    return _figure(data, layout)

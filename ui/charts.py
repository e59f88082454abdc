"""The app's charts: the probability bars as HTML (:func:`probability_bars`), and plotly
figures built from plain dicts for everything else.

``make_subplots`` and validated ``go.Bar`` objects cost ~30 ms per figure; these builders
write the figure JSON directly and wrap it in ``go.Figure(..., _validate=False)``, which
``st.plotly_chart`` serialises in about a millisecond. Every figure is static apart from
hover (``PLOTLY_CONFIG`` hides the mode bar).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import html

import numpy as np
import plotly.graph_objects as go

PLOTLY_CONFIG = {"displayModeBar": False, "responsive": True}

# One colour per model on every page; unknown models take the next free colour.
MODEL_COLORS = {"numpy": "#0e7490", "dense": "#ea580c", "cnn": "#4f46e5", "lenet5": "#16a34a"}
_SPARE_COLORS = ("#db2777", "#7c3aed", "#ca8a04", "#475569")
MUTED = "#cbd5e1"
GRID = "rgba(100, 116, 139, 0.18)"


def model_color(name: str, position: int = 0) -> str:
    return MODEL_COLORS.get(name) or _SPARE_COLORS[position % len(_SPARE_COLORS)]


def _axis_id(i: int) -> str:
    return "" if i == 0 else str(i + 1)


def _figure(data: list[dict], layout: dict) -> go.Figure:
    return go.Figure(data=data, layout=layout, _validate=False)


def probability_bars(probs: Mapping[str, np.ndarray], titles: Mapping[str, str],
                     class_names: Sequence[str], height: int = 130) -> str:
    """One panel of 10 bars per model, side by side, all on the same 0-1 scale, as HTML
    for ``st.html``.

    ``probs``: model name -> ``(10,)`` probabilities. Each model's top class is drawn in the
    model's colour with its percentage over it; the rest are muted. Plain HTML, not a
    chart: Streamlit swaps it in place on a rerun, where a plotly chart with new numbers is
    mounted anew (``benchmarks/PLOTLY_REMOUNT.md``). Text takes the theme's colour;
    hovering a bar shows its probability. ``height``: the bars' area in pixels.
    """
    panels = []
    # Names longer than a digit ("Ankle boot") run upwards under their bars, or ten of
    # them would not fit beside each other.
    long = max(len(str(n)) for n in class_names) > SHORT_LABEL
    ticks_class = "mb-x mb-l" if long else "mb-x"
    for i, name in enumerate(probs):
        p = np.asarray(probs[name], np.float64).reshape(-1)
        top = int(p.argmax())
        color = model_color(name, i)
        title = html.escape(titles.get(name, name))
        bars, ticks = [], []
        for k, v in enumerate(p):
            label = html.escape(str(class_names[k]))
            tip = f"{label}: {v:.1%}"
            if k == top:
                # Over its bar, and slid sideways by as much of its own width as the bar is
                # far along the row, so that the first and last bars' labels stay inside.
                at = 100 * (k + 0.5) / len(p)
                bars.append(f'<div class="mb-c" title="{tip}"><span class="mb-v" '
                            f'style="bottom:{100 * v:.1f}%;left:{at:.0f}%;'
                            f'transform:translateX(-{at:.0f}%)">{v:.0%}</span><div class="mb-b" '
                            f'style="height:{100 * v:.1f}%;background:{color}"></div></div>')
            else:
                bars.append(f'<div class="mb-c" title="{tip}"><div class="mb-b" '
                            f'style="height:{100 * v:.1f}%"></div></div>')
            ticks.append(f"<span>{label}</span>")
        panels.append(f'<div class="mb-m" role="img" aria-label="{title}: '
                      f'{html.escape(str(class_names[top]))}, {p[top]:.0%}">'
                      f'<div class="mb-t">{title}</div>'
                      f'<div class="mb-p" style="height:{height}px">{"".join(bars)}</div>'
                      f'<div class="{ticks_class}">{"".join(ticks)}</div></div>')
    signature = ",".join(f"{float(v):.4f}" for p in probs.values()
                         for v in np.asarray(p).reshape(-1))
    return (_BARS_STYLE + f'<div class="mb" data-bars="{signature}">{"".join(panels)}</div>')


SHORT_LABEL = 3   # class names up to this many characters stand level under the bars

# Scoped to the bars' own classes; colours that read on the light and the dark theme.
_BARS_STYLE = """<style>
.mb{display:flex;gap:0.6rem;width:100%;padding-top:0.2rem}
.mb-m{flex:1 1 0;min-width:0}
.mb-t{font-weight:600;font-size:0.9rem;text-align:center;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis;margin-bottom:1.25rem}
.mb-p{position:relative;display:flex;align-items:flex-end;gap:2px;
border-bottom:1px solid rgba(128,128,128,.5);border-top:1px solid rgba(128,128,128,.15);
background:linear-gradient(to top,transparent calc(50% - .5px),
rgba(128,128,128,.18) calc(50% - .5px),rgba(128,128,128,.18) calc(50% + .5px),
transparent calc(50% + .5px))}
.mb-c{flex:1 1 0;height:100%;display:flex;align-items:flex-end}
.mb-b{width:100%;min-height:1px;border-radius:2px 2px 0 0;background:rgba(148,163,184,.55)}
.mb-v{position:absolute;margin-bottom:2px;font-size:0.8rem;font-weight:700;white-space:nowrap;
line-height:1.1}
.mb-x{display:flex;gap:2px;margin-top:2px}
.mb-x span{flex:1 1 0;text-align:center;font-size:0.75rem;opacity:.8}
.mb-l span{min-width:0;writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;
height:5.2em;line-height:1;font-size:0.7rem;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis;display:flex;align-items:center}
</style>"""


CONFUSION_MODES = ("Counts", "Row %", "Errors only")


def confusion_figure(confusion: Sequence[Sequence[int]], class_names: Sequence[str],
                     mode: str = "Counts", height: int = 540) -> go.Figure:
    """Heatmap of a confusion matrix (rows = true class, columns = prediction).

    ``mode``: ``"Counts"``; ``"Row %"`` (each row divided by its total, i.e. recall on the
    diagonal); ``"Errors only"`` (counts with the diagonal blanked so mistakes stand out).
    """
    cm = np.asarray(confusion, np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    if mode == "Row %":
        z = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        text = [[f"{v:.1%}" if v else "" for v in row] for row in z]
    else:
        z = cm.copy()
        if mode == "Errors only":
            np.fill_diagonal(z, 0)
        text = [[f"{int(v)}" if v else "" for v in row] for row in z]
    labels = list(class_names)
    # Colour on a square-root scale so that a handful of mistakes still shows beside a
    # diagonal of ~1000; the numbers in the cells are the real values.
    top = float(z.max()) or 1.0
    data = [{
        "type": "heatmap", "z": np.sqrt(z / top).round(4).tolist(), "x": labels, "y": labels,
        "text": text, "texttemplate": "%{text}", "textfont": {"size": 12},
        "colorscale": [[0, "#f8fafc"], [0.25, "#c7d2fe"], [0.6, "#6366f1"], [1, "#312e81"]],
        "zmin": 0, "zmax": 1, "xgap": 1, "ygap": 1, "showscale": False,
        "hovertemplate": "true %{y}, predicted %{x}: %{text}<extra></extra>",
    }]
    layout = {
        "height": height, "margin": {"l": 60, "r": 10, "t": 10, "b": 56},
        "xaxis": {"title": {"text": "Predicted"}, "type": "category", "fixedrange": True,
                  "tickfont": {"size": 13}, "constrain": "domain"},
        "yaxis": {"title": {"text": "True"}, "type": "category", "autorange": "reversed",
                  "fixedrange": True, "tickfont": {"size": 13}, "scaleanchor": "x",
                  "constrain": "domain"},
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
    }
    return _figure(data, layout)


def loss_accuracy_layout(height: int, epoch_axis: dict, legend_y: float, loss_axis: dict,
                         accuracy_format: str) -> dict:
    """Layout of a two-panel figure: loss per epoch on the left, accuracy on the right."""
    axis = {"gridcolor": GRID, "zeroline": False}
    return {
        "height": height, "margin": {"l": 56, "r": 10, "t": 36, "b": 44},
        "legend": {"orientation": "h", "y": legend_y, "x": 0, "font": {"size": 13}},
        "xaxis": {**epoch_axis, "domain": [0, 0.46], "anchor": "y"},
        "yaxis": {**axis, "anchor": "x", **loss_axis},
        "xaxis2": {**epoch_axis, "domain": [0.54, 1], "anchor": "y2"},
        "yaxis2": {**axis, "anchor": "x2", "tickformat": accuracy_format},
        "annotations": [
            {"text": f"<b>{text}</b>", "x": x, "y": 1, "xref": "paper", "yref": "paper",
             "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 15}}
            for text, x in (("Loss", 0.23), ("Accuracy", 0.77))
        ],
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "closest",
    }


def curves_figure(histories: Mapping[str, Sequence[Mapping]], titles: Mapping[str, str],
                  log_loss: bool = False, height: int = 440) -> go.Figure:
    """Loss (left) and accuracy (right) per epoch: train dashed, validation solid.

    ``histories``: model name -> list of epoch dicts with ``epoch, loss, accuracy, val_loss,
    val_accuracy``. Every model is overlaid in its own colour.
    """
    data: list[dict] = []
    for i, (name, epochs) in enumerate(histories.items()):
        if not epochs:
            continue
        color = model_color(name, i)
        title = titles.get(name, name)
        x = [int(e["epoch"]) for e in epochs]
        for ax, key, fmt in (("", "loss", ".4f"), ("2", "accuracy", ".2%")):
            for split, dash, prefix in (("train", "dash", ""), ("validation", "solid", "val_")):
                data.append({
                    "type": "scatter", "mode": "lines+markers", "x": x,
                    "y": [float(e[prefix + key]) for e in epochs],
                    "xaxis": f"x{ax}", "yaxis": f"y{ax}",
                    "name": title, "legendgroup": name,
                    "showlegend": ax == "" and split == "validation",
                    "line": {"color": color, "dash": dash, "width": 2.5 if dash == "solid" else 2},
                    "marker": {"size": 5},
                    "hovertemplate": (f"{title} {split}<br>epoch %{{x}}: %{{y:{fmt}}}"
                                      "<extra></extra>"),
                })
    # Two grey legend entries explain the line styles.
    for split, dash in (("train (dashed)", "dash"), ("validation (solid)", "solid")):
        data.append({"type": "scatter", "mode": "lines", "x": [None], "y": [None],
                     "name": split, "line": {"color": "#64748b", "dash": dash},
                     "legendgroup": split, "hoverinfo": "skip"})
    longest = max((len(e) for e in histories.values()), default=1)
    axis = {"gridcolor": GRID, "zeroline": False}
    epoch_axis = {**axis, "title": {"text": "epoch"}, "tickformat": "d",
                  **({"dtick": 1} if longest <= 15 else {})}
    layout = loss_accuracy_layout(height, epoch_axis, legend_y=-0.16,
                                  loss_axis={"type": "log" if log_loss else "linear"},
                                  accuracy_format=".1%")
    return _figure(data, layout)


# ---------------------------------------------------------------------------------------
# Classroom charts: a sweep, label counts, live training
# ---------------------------------------------------------------------------------------

def sweep_figure(values: np.ndarray, curves: Mapping[str, np.ndarray],
                 titles: Mapping[str, str], x_title: str, current: float | None = None,
                 height: int = 380) -> go.Figure:
    """One line per model: its probability of the digit's class along a transform."""
    x = [float(v) for v in values]
    traces = []
    for i, (name, p) in enumerate(curves.items()):
        color = model_color(name, i)
        traces.append({"type": "scatter", "mode": "lines+markers", "x": x,
                       "y": np.round(np.asarray(p, np.float64), 4).tolist(),
                       "name": titles.get(name, name), "line": {"color": color, "width": 2.5},
                       "marker": {"size": 5},
                       "hovertemplate": titles.get(name, name) + "<br>%{x}: %{y:.1%}"
                                        "<extra></extra>"})
    shapes = []
    if current is not None:
        shapes.append({"type": "line", "x0": current, "x1": current, "y0": 0, "y1": 1,
                       "xref": "x", "yref": "paper",
                       "line": {"color": "#64748b", "dash": "dot", "width": 1.5}})
    layout = {
        "height": height, "margin": {"l": 56, "r": 10, "t": 16, "b": 44},
        "xaxis": {"title": {"text": x_title}, "gridcolor": GRID, "zeroline": False},
        "yaxis": {"title": {"text": "probability of the digit"}, "range": [0, 1.02],
                  "tickformat": ".0%", "gridcolor": GRID, "zeroline": False},
        "legend": {"orientation": "h", "y": -0.2, "x": 0, "font": {"size": 13}},
        "shapes": shapes, "hovermode": "closest",
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
    }
    return _figure(traces, layout)


def counts_figure(counts: Sequence[int], class_names: Sequence[str], height: int = 300
                  ) -> go.Figure:
    """How many digits were given each label: one bar per class."""
    labels = list(class_names)
    traces = [{"type": "bar", "x": labels, "y": [int(c) for c in counts],
               "marker": {"color": "#4f46e5"}, "text": [str(int(c)) for c in counts],
               "textposition": "outside", "cliponaxis": False,
               "hovertemplate": "%{x}: %{y} digits<extra></extra>"}]
    layout = {
        "height": height, "margin": {"l": 48, "r": 10, "t": 24, "b": 44}, "bargap": 0.25,
        "xaxis": {"title": {"text": "predicted label"}, "type": "category", "fixedrange": True},
        "yaxis": {"title": {"text": "digits"}, "gridcolor": GRID, "zeroline": False,
                  "fixedrange": True, "rangemode": "tozero"},
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
    }
    return _figure(traces, layout)


def live_figure(batches: Sequence[dict], history: Sequence[dict], epochs: int, name: str,
                height: int = 360) -> go.Figure:
    """Loss and accuracy while training: the running training values after every few
    batches (dashed) and the validation values at the end of each epoch (solid)."""
    color = model_color(name)
    x = [b["x"] for b in batches]
    traces = []
    for ax, key, fmt in (("", "loss", ".4f"), ("2", "accuracy", ".2%")):
        traces.append({"type": "scatter", "mode": "lines", "x": x,
                       "y": [b[key] for b in batches], "xaxis": f"x{ax}", "yaxis": f"y{ax}",
                       "name": "training (running mean of the epoch)", "legendgroup": "train",
                       "showlegend": ax == "",
                       "line": {"color": color, "dash": "dash", "width": 2},
                       "hovertemplate": f"training<br>epoch %{{x:.2f}}: %{{y:{fmt}}}"
                                        "<extra></extra>"})
        traces.append({"type": "scatter", "mode": "lines+markers",
                       "x": [e["epoch"] for e in history],
                       "y": [e["val_" + key] for e in history], "xaxis": f"x{ax}",
                       "yaxis": f"y{ax}", "name": "validation (end of each epoch)",
                       "legendgroup": "val", "showlegend": ax == "",
                       "line": {"color": color, "width": 2.5}, "marker": {"size": 7},
                       "hovertemplate": f"validation<br>epoch %{{x}}: %{{y:{fmt}}}"
                                        "<extra></extra>"})
    axis = {"gridcolor": GRID, "zeroline": False}
    epoch_axis = {**axis, "title": {"text": "epoch"}, "range": [0, max(epochs, 1)],
                  "dtick": 1}
    layout = loss_accuracy_layout(height, epoch_axis, legend_y=-0.2,
                                  loss_axis={"rangemode": "tozero"},
                                  accuracy_format=".0%")
    return _figure(traces, layout)


# One colour per digit class on the model maps (Tableau's 10: distinct, colour-blind aware).
CLASS_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                "#ff9da7", "#9c755f", "#bab0ac")
MISREAD_COLOR = "#111827"
STAR_COLOR = "#facc15"


def map_figure(coords: np.ndarray, labels: np.ndarray, preds: np.ndarray,
               class_names: Sequence[str], title: str, star: np.ndarray | None = None,
               height: int = 400) -> go.Figure:
    """A model map: one WebGL point per test digit (``coords`` ``(N, 2)``) coloured by its
    true label (``labels`` ``(N,)``), a dark cross on each digit the model misread
    (``preds`` ``(N,)``: its answers), the class names at their clusters' medians, and
    ``star`` ``(2,)`` (the current digit) as a star. A clicked point (``on_select``)
    is found again with :func:`map_point`."""
    xy = np.round(np.asarray(coords, np.float64), 1)  # float64: 12.3, not 12.300000190734863
    labels, preds = np.asarray(labels), np.asarray(preds)
    traces, notes = [], []
    for c, name in enumerate(class_names):
        rows = np.flatnonzero(labels == c)
        traces.append({
            "type": "scattergl", "mode": "markers", "name": str(name),
            "x": xy[rows, 0].tolist(), "y": xy[rows, 1].tolist(),
            # Only the answer rides along (the payload is ~10,000 points a map): a click's
            # trace and point number give the test digit (map_point).
            "customdata": preds[rows].tolist(),
            "marker": {"size": 3, "color": CLASS_COLORS[c % len(CLASS_COLORS)],
                       "opacity": 0.75},
            "hovertemplate": f"true {name}<br>read as %{{customdata}}<extra></extra>"})
        if len(rows):
            mx, my = np.median(xy[rows], axis=0)
            notes.append({"x": float(mx), "y": float(my), "text": f"<b>{name}</b>",
                          "showarrow": False, "font": {"size": 15, "color": "#111827"},
                          "bgcolor": "rgba(255,255,255,0.7)", "borderpad": 1})
    wrong = np.flatnonzero(preds != labels)
    traces.append({
        "type": "scattergl", "mode": "markers", "name": "misread",
        "x": xy[wrong, 0].tolist(), "y": xy[wrong, 1].tolist(),
        "customdata": np.stack([preds[wrong], wrong], 1).tolist(),
        "text": [str(class_names[int(t)]) for t in labels[wrong]],
        # A light rim keeps the dark cross visible on the dark theme's background too.
        "marker": {"size": 7, "symbol": "x", "color": MISREAD_COLOR,
                   "line": {"color": "rgba(255, 255, 255, 0.8)", "width": 0.5}},
        "hovertemplate": "misread: true %{text}<br>read as %{customdata[0]}"
                         "<br>test digit #%{customdata[1]}<extra></extra>"})
    if star is not None:
        sx, sy = (float(v) for v in np.asarray(star, np.float32).reshape(2))
        traces.append({
            # WebGL too: WebGL traces are drawn over SVG ones, which would hide the star.
            "type": "scattergl", "mode": "markers", "name": "your digit", "x": [sx], "y": [sy],
            "marker": {"size": 22, "symbol": "star", "color": STAR_COLOR,
                       "line": {"color": "#111827", "width": 2}},
            "hovertemplate": "your digit<extra></extra>"})
    hidden = {"visible": False, "showgrid": False, "zeroline": False}
    layout = {
        "height": height, "margin": {"l": 4, "r": 4, "t": 32, "b": 4},
        "title": {"text": title, "x": 0.01, "font": {"size": 15}},
        "xaxis": hidden, "yaxis": {**hidden, "scaleanchor": "x"},
        "showlegend": False, "hovermode": "closest", "annotations": notes,
        "dragmode": "pan", "clickmode": "event+select",
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
    }
    return _figure(traces, layout)


RELIABILITY_BEFORE = "#94a3b8"   # slate: readable on white and on the dark theme's background


def reliability_figure(before: Mapping, after: Mapping, color: str, title: str,
                       height: int = 300) -> go.Figure:
    """A reliability diagram: each confidence bin's accuracy against its mean confidence,
    before (grey, dashed) and after (``color``) temperature scaling, with the diagonal a
    perfectly calibrated model would follow. ``before``/``after``: the bins of
    :func:`mnist_core.insight.calibration.reliability` (``count``, ``confidence``, ``accuracy``;
    empty bins are None and left out). Markers grow with the share of digits in the bin."""
    traces = [{"type": "scatter", "mode": "lines", "x": [0, 1], "y": [0, 1],
               "name": "perfectly calibrated", "hoverinfo": "skip",
               "line": {"color": RELIABILITY_BEFORE, "width": 1, "dash": "dot"}}]
    for bins, name, line_color, dash in ((before, "before", RELIABILITY_BEFORE, "dash"),
                                         (after, "after", color, "solid")):
        total = max(sum(bins["count"]), 1)
        keep = [i for i, c in enumerate(bins["count"]) if c]
        shares = [bins["count"][i] / total for i in keep]
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": name,
            "x": [bins["confidence"][i] for i in keep], "y": [bins["accuracy"][i] for i in keep],
            "customdata": [[bins["count"][i], s] for i, s in zip(keep, shares)],
            "line": {"color": line_color, "width": 2.5 if name == "after" else 1.5,
                     "dash": dash},
            "marker": {"color": line_color, "size": [5 + 14 * s ** 0.5 for s in shares]},
            "hovertemplate": (f"{name}: sure %{{x:.1%}}, right %{{y:.1%}}"
                              "<br>%{customdata[0]:,} digits (%{customdata[1]:.1%})<extra></extra>")})
    axis = {"range": [0, 1.02], "tickformat": ".0%", "tickvals": [0, 0.25, 0.5, 0.75, 1],
            "gridcolor": GRID, "zeroline": False, "fixedrange": True}
    layout = {
        "height": height, "margin": {"l": 48, "r": 8, "t": 36, "b": 40},
        "title": {"text": title, "x": 0.01, "font": {"size": 14}},
        "xaxis": {**axis, "title": {"text": "confidence (how sure)", "font": {"size": 12}}},
        "yaxis": {**axis, "title": {"text": "accuracy (how often right)", "font": {"size": 12}}},
        "legend": {"orientation": "h", "x": 0, "y": -0.32, "font": {"size": 11}},
        "showlegend": False, "hovermode": "closest",
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
    }
    return _figure(traces, layout)


def map_point(labels: np.ndarray, n_classes: int, curve: int, point: int,
              customdata=None) -> int | None:
    """The test digit (its row in ``labels``) behind point ``point`` of trace ``curve`` of
    a :func:`map_figure`; None for the star or a point that is not there."""
    if curve < n_classes:
        rows = np.flatnonzero(np.asarray(labels) == curve)
        return int(rows[point]) if 0 <= point < len(rows) else None
    if curve == n_classes and isinstance(customdata, (list, tuple)) and len(customdata) == 2:
        return int(customdata[1])  # the misread trace carries its rows
    return None

"""Views shared by the pages: the prediction panel, what the models see, how a digit was
read (stages and views), several digits at once, and the gallery table.

Images arrive as ``(h, w) float32 in [0, 1]`` white-on-black (mnist_core's convention);
:mod:`ui.pictures` draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import streamlit as st

from mnist_core.artifacts.files import Gallery
from mnist_core.reading.inference import Reading, agreement
from mnist_core.models.model import Model
from mnist_core.preprocess import Stages

from . import pictures
from .charts import probability_bars

ACCENT = (251, 191, 36)    # amber: the digit's box drawn on the ink map


# ---------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------

def model_input_view(final: np.ndarray, caption: str = "What the models see: 28×28 pixels",
                     scale: int = 8) -> None:
    """The 28x28 model input, blown up with a faint pixel grid."""
    st.image(pictures.png_url(pictures.pixels(final, scale, grid=True)), caption=caption,
             width=28 * scale)


def stages_view(stages: Stages, side: int = 140) -> None:
    """The preprocessing steps from the ink found to the model input, left to right.

    One ``st.image`` call with fixed-width images, so they wrap on a phone instead of
    stacking full-width the way columns would.
    """
    ink = pictures.rgb(stages.ink)
    x, y, w, h = stages.box
    t = max(1, max(ink.shape[:2]) // 100)
    ink[y:y + h, x:x + t] = ACCENT
    ink[y:y + h, x + w - t:x + w] = ACCENT
    ink[y:y + t, x:x + w] = ACCENT
    ink[y + h - t:y + h, x:x + w] = ACCENT
    fitted = np.zeros((20, 20), np.float32)
    fh, fw = stages.fitted.shape
    fitted[(20 - fh) // 2:(20 - fh) // 2 + fh, (20 - fw) // 2:(20 - fw) // 2 + fw] = stages.fitted
    images = [pictures.square(ink, side), pictures.square(stages.cropped, side),
              pictures.pixels(fitted, side // 20), pictures.mark_centre(stages.boxed, side // 28),
              pictures.mark_centre(stages.final, side // 28)]
    st.image([pictures.png_url(pictures.framed(img)) for img in images], width=side + 12, caption=[
        "1 · ink and its box", "2 · cropped", "3 · fitted into 20×20", "4 · pasted in 28×28",
        "5 · centred by mass"])
    if stages.polarity is not None:
        st.caption(f"Ink: {stages.polarity.describe()}.")


def views_section(reading: Reading, models: Mapping[str, Model], side: int = 56) -> None:
    """The test-time views each model read (``reading.views``, as :mod:`mnist_core.models.views`
    made them) and which models average over which of them."""
    groups: dict[int, tuple[list, list[str]]] = {}   # models sharing one list of views
    for name, named in reading.views.items():
        groups.setdefault(id(named), (named, []))[1].append(_title(models, name))
    if not groups:
        return
    widest = max((named for named, _ in groups.values()), key=len)
    if len(widest) == 1:
        return  # every model reads this digit once: nothing more to show
    st.markdown("**Read a few ways, answers averaged**")
    st.image([pictures.png_url(pictures.framed(pictures.pixels(img, side // 28), margin=4))
              for _, img in widest], width=side + 8, caption=[caption for caption, _ in widest])
    lines = []
    for named, titles in groups.values():
        captions = [c for c, _ in named]
        which = ("all of them" if len(captions) == len(widest) else
                 "as is only" if len(captions) == 1 else ", ".join(captions))
        lines.append(f"{' and '.join(titles)}: {which}")
    st.caption("Turned (↺ ↻) and resized (×) views help the convnets; digits as wide as tall "
               "are also read narrowed, since scanners often stretch digits to fill a square. "
               "Each model's bars show the average over its views. " + "; ".join(lines) + ".")


def _title(models: Mapping[str, Model], name: str) -> str:
    m = models.get(name)
    return m.title if m is not None else name


def agreement_note(votes: Mapping[object, list[str]], models: Mapping[str, Model],
                   quiet: bool = False) -> None:
    """Say whether the models agree (unless ``quiet``); when they do not, which said what."""
    if len(models) < 2:
        return
    if len(votes) == 1:
        if not quiet:
            st.success(f"All {len(models)} models read **{next(iter(votes))}**.",
                       icon=":material/check:")
        return
    parts = " · ".join(f"**{answer}**: {', '.join(_title(models, n) for n in names)}"
                       for answer, names in sorted(votes.items(), key=lambda kv: -len(kv[1])))
    st.warning(f"The models disagree. {parts}", icon=":material/call_split:")


def prediction_panel(reading: Reading, models: Mapping[str, Model],
                     class_names: Sequence[str], key: str, true_label: int | None = None,
                     cards: bool = True) -> None:
    """Each model's answer and confidence, whether they agree, and every model's bars.

    ``reading``: the digit as :func:`mnist_core.reading.inference.read` (or ``read_digits``) read
    it: each model's ``(10,)`` probabilities and the not-a-digit verdict, which this only
    shows (a flagged input is said not to look like a digit, and its cards show the
    answers as guesses). With ``true_label`` each card also says whether the model was
    right. All bars go into one row of panels (:func:`ui.charts.probability_bars`), in a
    container keyed ``{key}-bars``. ``cards=False`` (one digit of several) leaves out the
    answer cards and the "all agree" note.
    """
    probs, flagged = reading.probs, reading.flagged
    if flagged:
        reasons = "; ".join(reading.verdict.reasons)
        st.warning(f"**This does not look like a digit** ({reasons}). The models still name "
                   "one, as they must; treat these as guesses.",
                   icon=":material/help:")
    if cards and flagged and true_label is None:
        for col, name in zip(st.columns(len(probs)), probs):
            p = np.asarray(probs[name])
            col.metric(_title(models, name), "?",
                       f"guess {class_names[int(p.argmax())]} · {float(p.max()):.0%}",
                       delta_color="off", delta_arrow="off", border=True)
    elif cards:
        cols = st.columns(len(probs))
        for col, name in zip(cols, probs):
            p = np.asarray(probs[name])
            digit, conf = int(p.argmax()), float(p.max())
            if true_label is None:
                delta, color = f"{conf:.0%} sure", "off"
            else:
                right = digit == int(true_label)
                delta = f"{conf:.0%} sure · {'right' if right else 'wrong'}"
                color = "green" if right else "red"
            col.metric(_title(models, name), class_names[digit], delta, delta_color=color,
                       delta_arrow="off", border=True)
    _, votes = agreement(reading)
    agreement_note({class_names[d]: names for d, names in votes.items()}, models,
                   quiet=not cards or flagged)
    titles = {n: _title(models, n) for n in probs}
    with st.container(key=f"{key}-bars"):
        st.html(probability_bars(probs, titles, class_names, height=130 if cards else 100))


def sequence_panel(readings: Sequence[Reading], models: Mapping[str, Model],
                   class_names: Sequence[str], key: str) -> None:
    """Several digits: the string each model read, then each digit with its bars.

    The per-digit rows only speak up about agreement when the models disagree.
    """
    sequences = {n: "".join(class_names[r.digit(n)] for r in readings) for n in models}
    cols = st.columns(len(models))
    for col, name in zip(cols, models):
        col.metric(_title(models, name), sequences[name], f"{len(readings)} digits",
                   delta_color="off", delta_arrow="off", border=True)
    votes: dict[str, list[str]] = {}
    for name, seq in sequences.items():
        votes.setdefault(seq, []).append(name)
    agreement_note(votes, models)
    for i, reading in enumerate(readings):
        with st.container(border=True):
            left, right = st.columns([1, 5], vertical_alignment="center")
            left.image(pictures.png_url(pictures.pixels(reading.image, 4, grid=True)), width=112,
                       caption=f"digit {i + 1}, as the models see it")
            with right:
                prediction_panel(reading, models, class_names, key=f"{key}-{i}",
                                 cards=False)


def gallery_table(gallery: Gallery, rows: np.ndarray, models: Mapping[str, Model],
                  class_names: Sequence[str], key: str) -> None:
    """Gallery digits as a table: image, test-set index, true label, each model's answer."""
    rows = np.asarray(rows, np.int64)
    table: dict[str, list] = {
        "Image": [pictures.data_url(gallery.images[i]) for i in rows],
        "Test index": gallery.index[rows].tolist(),
        "True": [class_names[int(gallery.labels[i])] for i in rows],
    }
    for name in models:
        preds = gallery.preds.get(name)
        if preds is None:
            table[_title(models, name)] = ["—"] * len(rows)
            continue
        table[_title(models, name)] = [
            class_names[int(preds[i])] + ("" if preds[i] == gallery.labels[i] else "  ✗")
            for i in rows]
    import pandas as pd   # 0.27 s to import, needed only here: not on the Draw page's way

    st.dataframe(pd.DataFrame(table), hide_index=True, row_height=60, key=key,
                 column_config={"Image": st.column_config.ImageColumn("Image", width="small"),
                                "Test index": st.column_config.NumberColumn(format="%d")})

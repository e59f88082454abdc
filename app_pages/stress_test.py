"""Stress test: shift, rotate, scale, thicken and add noise to a digit (or a test image of
clothing, ``?data=fashion``); watch the models cope."""

from collections import Counter
from dataclasses import replace

import numpy as np
import streamlit as st

from mnist_core.reading import novelty, stress
from mnist_core.reading.inference import read, read_input
from ui import components, dataset, digit_picker, memo, page, pictures
from ui.charts import PLOTLY_CONFIG, sweep_figure

models, names = page.start(with_user_model=True, datasets=True)
noun = dataset.info().noun

# key -> (label, min, max, step, neutral value)
SLIDERS = {
    "stress_shift_x": ("Shift right (pixels)", -10, 10, 1, 0),
    "stress_shift_y": ("Shift down (pixels)", -10, 10, 1, 0),
    "stress_rotate": ("Rotate (degrees, + = anticlockwise)", -90, 90, 5, 0),
    "stress_scale": ("Scale", 0.4, 1.6, 0.05, 1.0),
    "stress_thickness": ("Stroke thickness (pixels, − = thinner)", -2, 3, 1, 0),
    "stress_noise": ("Noise", 0.0, 0.8, 0.05, 0.0),
}
SWEEP_LABELS = {"rotate": "Rotation", "shift_x": "Shift right", "shift_y": "Shift down",
                "scale": "Scale", "thickness": "Thickness", "noise": "Noise"}
SWEEP_AXES = {"rotate": "rotation (degrees)", "shift_x": "shift right (pixels)",
              "shift_y": "shift down (pixels)", "scale": "scale",
              "thickness": "stroke thickness (pixels)", "noise": "noise (standard deviation)"}


def reset() -> None:
    for key, spec in SLIDERS.items():
        st.session_state[key] = spec[-1]


st.title("Stress test")
st.caption(("Real handwriting is shifted, tilted, too big or too small, thick or thin, and "
            "noisy." if noun == "digit" else "A photo is never cropped quite like the "
            "dataset's: shifted, tilted, too big or too small, noisy.")
           + f" Push one {noun} around and see which model holds on longest.")


@st.fragment
def stress_board() -> None:
    """The digit, the sliders and all that follows from them: a slider move reruns this
    only, and the title and navigation above stay as they are."""
    pick_col, slider_col = st.columns([1, 1], gap="large")
    with pick_col:
        digit = digit_picker.pick_digit_or_stop("stress", "stress it")

    with slider_col:
        for key, (label, lo, hi, step, neutral) in SLIDERS.items():
            st.session_state.setdefault(key, neutral)  # the start value, without a value= clash
        values = {key: st.slider(label, lo, hi, step=step, key=key)
                  for key, (label, lo, hi, step, neutral) in SLIDERS.items()}
        st.button("Reset", key="stress_reset", on_click=reset, icon=":material/restart_alt:")

    transform = stress.Transform(
        shift_x=float(values["stress_shift_x"]), shift_y=float(values["stress_shift_y"]),
        rotate=float(values["stress_rotate"]), scale=float(values["stress_scale"]),
        thickness=int(values["stress_thickness"]), noise=float(values["stress_noise"]))
    x = digit.image
    moved = stress.apply(x, transform)

    with pick_col:  # beside the sliders, so every change shows at once
        st.image([pictures.png_url(pictures.framed(pictures.digit_picture(x, 6))),
                  pictures.png_url(pictures.framed(pictures.digit_picture(moved, 6)))], width=180,
                 caption=[digit.source, "after the changes: what the models see"])
    # A digit made noisy or thick on purpose: only the models' doubt can flag it.
    components.prediction_panel(read(moved, models, judge_image=False,
                                     novelty_cfg=novelty.config_for(dataset.current())),
                                models, names,
                                key="stress", true_label=digit.label)

    # ---- sweep --------------------------------------------------------------------------
    st.subheader("Sweep one change")
    if digit.label is not None:
        target = int(digit.label)
        why = f"the true label, {names[target]}"
    else:
        original = [int(p.argmax()) for p in memo.remembered(
            "stress-original", (memo.digest(x), memo.model_key(models)),
            lambda: read_input(x, models)).values()]
        target = Counter(original).most_common(1)[0][0]
        why = f"{names[target]}, what most models read in the unchanged {noun}"
    sweep = st.segmented_control("Sweep", list(stress.SWEEPS), format_func=SWEEP_LABELS.get,
                                 default="rotate", required=True, key="stress_sweep")
    field = stress.SWEEPS[sweep][0]
    # The sweep runs the swept change over its whole range, so it does not depend on that
    # slider: moving it only moves the dotted line, and the curves are kept.
    base = replace(transform, **{field: getattr(stress.Transform(), field)})
    sweep_values, curves = memo.remembered(
        "stress-sweep", (memo.digest(x), memo.model_key(models), target, sweep, base),
        lambda: stress.sweep(x, models, target, sweep, base=base))
    st.plotly_chart(sweep_figure(sweep_values, curves, {n: m.title for n, m in models.items()},
                                 SWEEP_AXES[sweep], current=getattr(transform, field)),
                    config=PLOTLY_CONFIG, key="stress_sweep_chart")
    lowest = min(curves, key=lambda n: float(np.mean(curves[n])))
    st.caption(f"Each model's probability of {why}, as {SWEEP_LABELS[sweep].lower()} runs over "
               f"its range; the other sliders stay where they are and the dotted line marks the "
               f"current setting. Least robust here: {models[lowest].title}.")


stress_board()

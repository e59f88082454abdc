"""Look inside: weights, activations, feature maps and saliency of every model for one digit
(or one test image of clothing, ``?data=fashion``)."""

import numpy as np
import streamlit as st

from mnist_core.insight.explain import occlusion_map
from mnist_core.reading.inference import read_input
from ui import dataset, digit_picker, page, pictures

models, names = page.start(with_user_model=True, datasets=True)
noun = dataset.info().noun

st.title("Look inside the models")
st.caption(f"What each network has learned and what it looks at when it reads one {noun}. "
           "Red is positive, blue negative, white zero.")

pick_col, digit_col = st.columns([3, 2], gap="large")
with pick_col:
    digit = digit_picker.pick_digit_or_stop("inside", "look inside the models")

x = digit.image
probs = read_input(x, models)
with digit_col:
    st.image(pictures.digit_picture(x, 6), width=168, caption=digit.source + (
        f", true label {names[digit.label]}" if digit.label is not None else ""))

# ---- one model in depth ----------------------------------------------------------------
st.subheader("Inside one network")
name = st.segmented_control("Model", list(models), format_func=lambda n: models[n].title,
                            default="numpy" if "numpy" in models else next(iter(models)),
                            required=True, key="inside_model")
model = models[name]
p = probs[name]
st.caption(f"{model.title} reads **{names[int(p.argmax())]}** ({p.max():.0%} sure).")
if model.family == "mlp":
    acts = model.hidden_activations(x)
    first = acts[0]
    k = min(24, len(first))
    top = np.argsort(-first, kind="stable")[:k]
    templates = model.first_layer_templates(n=len(first))[top]
    st.markdown(f"**First-layer weights as 28×28 templates**: the {k} hidden units this "
                f"{noun} excites most, strongest first")
    st.image(pictures.grid([pictures.outlined(pictures.diverging(t), x, 3)
                             for t in templates], cols=12, background=200),
             caption="Each unit adds up the pixels under its red areas and subtracts those "
                     f"under its blue ones; the grey line is the {noun}'s outline. Each "
                     "template is scaled to its own range.")
    st.markdown(f"**Hidden activations**: every unit of each hidden layer for this {noun}")
    panels, captions = [], []
    for i, a in enumerate(acts):
        cols = 32 if len(a) >= 256 else 16
        rows = -(-len(a) // cols)
        padded = np.zeros(rows * cols, np.float32)
        padded[:len(a)] = a
        panels.append(pictures.framed(pictures.upscale(
            pictures.sequential(padded.reshape(rows, cols)), 8 if len(a) < 2048 else 4)))
        active = int((a > 1e-6).sum())
        captions.append(f"layer {i + 1}: {active} of {len(a)} units above zero")
    st.image(panels, caption=captions)
    st.caption("Bright = strongly active, black = silent. A handful of units carry each "
               f"{noun}; the last layer turns them into the ten probabilities.")
else:
    filters = model.conv_filters(0)
    size = filters.shape[-1]
    st.markdown(f"**First-layer filters**: {len(filters)} kernels of {size}×{size} pixels")
    st.image(pictures.grid([pictures.diverging(f) for f in filters], cols=16,
                            scale=max(4, 48 // size), background=200),
             caption="Each filter slides over the image and lights up where the pixels "
                     "match its red (and avoid its blue) pattern: edges and stroke pieces.")
    st.markdown(f"**Feature maps**: what each convolution layer passes on for this {noun}")
    for layer, maps in model.feature_maps(x):
        side = maps.shape[-1]
        signed = bool(maps.min() < -1e-6)  # tanh (LeNet-5) can be negative, ReLU cannot
        limit = float(np.percentile(np.abs(maps), 99.5)) or None
        paint = pictures.diverging if signed else pictures.sequential
        st.image(pictures.grid([paint(m, limit) for m in maps], cols=16,
                                scale=max(2, 56 // side)),
                 caption=f"{layer}: {len(maps)} maps of {side}×{side} ("
                         + ("red = positive, blue = negative" if signed else
                            "bright = active") + ", one scale for the whole layer)")

# ---- saliency, every model side by side ------------------------------------------------
st.subheader("Which pixels matter, for every model")
targets = ["own"] + list(range(10))
target = st.selectbox("Explain the probability of", targets, key="inside_target",
                      format_func=lambda t: "each model's own answer" if t == "own"
                      else f"class {names[t]}")
gradients, occlusions, captions = [], [], []
for n, m in models.items():
    t = int(probs[n].argmax()) if target == "own" else int(target)
    try:
        grad = m.input_gradient(x, t)
        occ = occlusion_map(m.predict_proba, x, t)
    except Exception as exc:  # noqa: BLE001 - one odd model must not take the page down
        st.warning(f"No saliency for {m.title}: {exc}")
        continue
    gradients.append(pictures.framed(pictures.outlined(pictures.diverging(grad), x, 5)))
    occlusions.append(pictures.framed(pictures.outlined(pictures.diverging(occ), x, 5)))
    captions.append(f"{m.title}: {names[t]} ({probs[n][t]:.0%})")
st.markdown("**Gradient saliency**: how the log-probability changes as each pixel brightens")
st.image(gradients, caption=captions, width=152)
st.caption("Red pixels: more ink there would make the model surer; blue: less sure. Every "
           "gradient is computed by hand in NumPy: through the NumPy network's own backward "
           "pass, and for the Keras models through each layer's backward rule applied to "
           "the saved weights (checked against TensorFlow's GradientTape in the tests). The "
           f"grey line is the {noun}'s outline.")
st.markdown("**Occlusion**: how much the probability drops when a 6×6 patch is blacked out")
st.image(occlusions, caption=captions, width=152)
st.caption("Red areas are the ones the model needs; blue ones it is better off without. "
           "Unlike the gradient, this only asks the model for predictions, so it works for "
           "any model.")

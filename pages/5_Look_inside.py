"""Look inside: weights, activations, feature maps and saliency of every model for one digit."""

import numpy as np
import streamlit as st

from mnist_core import explain
from ui import classroom, components, data

st.set_page_config(page_title="MNIST Studio · Look inside", page_icon="🔬", layout="wide")
components.nav()

models = classroom.with_user_model(data.models())
names = data.class_names()

st.title("Look inside the models")
st.caption("What each network has learned and what it looks at when it reads one digit. "
           "Red is positive, blue negative, white zero.")

pick_col, digit_col = st.columns([3, 2], gap="large")
with pick_col:
    digit = classroom.pick_digit("inside")
if digit is None:
    st.info("Draw a digit in the small square (or pick another source) to look inside the "
            "models.", icon=":material/draw:")
    st.stop()

x = digit.image
probs = {n: m.predict_proba(x[None])[0] for n, m in models.items()}
with digit_col:
    st.image(classroom.digit_picture(x, 6), width=168, caption=digit.source + (
        f", true label {names[digit.label]}" if digit.label is not None else ""))

# ---- one model in depth ----------------------------------------------------------------
st.subheader("Inside one network")
name = st.segmented_control("Model", list(models), format_func=lambda n: models[n].title,
                            default="numpy" if "numpy" in models else next(iter(models)),
                            required=True, key="inside_model")
model = models[name]
p = probs[name]
st.caption(f"{model.title} reads **{names[int(p.argmax())]}** ({p.max():.0%} sure).")
try:
    kind = classroom.network_type(model.net)
except Exception as exc:  # noqa: BLE001 - an unexpected network: say so, no traceback
    st.error(f"Cannot look inside {model.title}: {exc}")
    st.stop()

if kind == "mlp":
    acts = explain.hidden_activations(model.net, x)
    first = acts[0]
    k = min(24, len(first))
    top = np.argsort(-first, kind="stable")[:k]
    templates = explain.first_layer_templates(model.net, n=len(first))[top]
    st.markdown(f"**First-layer weights as 28×28 templates**: the {k} hidden units this "
                f"digit excites most, strongest first")
    st.image(classroom.grid([classroom.outlined(classroom.diverging(t), x, 3)
                             for t in templates], cols=12, background=200),
             caption="Each unit adds up the pixels under its red areas and subtracts those "
                     "under its blue ones; the grey line is the digit's outline. Each "
                     "template is scaled to its own range.")
    st.markdown("**Hidden activations**: every unit of each hidden layer for this digit")
    pictures, captions = [], []
    for i, a in enumerate(acts):
        cols = 32 if len(a) >= 256 else 16
        rows = -(-len(a) // cols)
        padded = np.zeros(rows * cols, np.float32)
        padded[:len(a)] = a
        pictures.append(classroom.framed(classroom.upscale(
            classroom.sequential(padded.reshape(rows, cols)), 8 if len(a) < 2048 else 4)))
        active = int((a > 1e-6).sum())
        captions.append(f"layer {i + 1}: {active} of {len(a)} units above zero")
    st.image(pictures, caption=captions)
    st.caption("Bright = strongly active, black = silent. A handful of units carry each "
               "digit; the last layer turns them into the ten probabilities.")
else:
    filters = explain.conv_filters(model.net, 0)
    size = filters.shape[-1]
    st.markdown(f"**First-layer filters**: {len(filters)} kernels of {size}×{size} pixels")
    st.image(classroom.grid([classroom.diverging(f) for f in filters], cols=16,
                            scale=max(4, 48 // size), background=200),
             caption="Each filter slides over the image and lights up where the pixels "
                     "match its red (and avoid its blue) pattern: edges and stroke pieces.")
    st.markdown("**Feature maps**: what each convolution layer passes on for this digit")
    for layer, maps in explain.feature_maps(model.net, x):
        side = maps.shape[-1]
        signed = bool(maps.min() < -1e-6)  # tanh (LeNet-5) can be negative, ReLU cannot
        limit = float(np.percentile(np.abs(maps), 99.5)) or None
        paint = classroom.diverging if signed else classroom.sequential
        st.image(classroom.grid([paint(m, limit) for m in maps], cols=16,
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
        grad = explain.input_gradient(m.net, x, t)
        occ = explain.occlusion_map(m.predict_proba, x, t)
    except Exception as exc:  # noqa: BLE001 - one odd model must not take the page down
        st.warning(f"No saliency for {m.title}: {exc}")
        continue
    gradients.append(classroom.framed(classroom.outlined(classroom.diverging(grad), x, 5)))
    occlusions.append(classroom.framed(classroom.outlined(classroom.diverging(occ), x, 5)))
    captions.append(f"{m.title}: {names[t]} ({probs[n][t]:.0%})")
st.markdown("**Gradient saliency**: how the log-probability changes as each pixel brightens")
st.image(gradients, caption=captions, width=152)
st.caption("Red pixels: more ink there would make the model surer; blue: less sure. The "
           "NumPy network's gradient is computed by hand through its own backward pass, the "
           "Keras models' with TensorFlow's GradientTape. The grey line is the digit's outline.")
st.markdown("**Occlusion**: how much the probability drops when a 6×6 patch is blacked out")
st.image(occlusions, caption=captions, width=152)
st.caption("Red areas are the ones the model needs; blue ones it is better off without. "
           "Unlike the gradient, this only asks the model for predictions, so it works for "
           "any model.")

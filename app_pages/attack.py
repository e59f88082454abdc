"""Adversarial digits (or clothing, ``?data=fashion``): a faint change, crafted against one
model, and every model's answer."""

import streamlit as st

from mnist_core.insight import adversarial
from mnist_core.reading import novelty
from mnist_core.reading.inference import read
from ui import components, dataset, digit_picker, page, pictures

models, names = page.start(with_user_model=True, datasets=True)
about = dataset.info()
noun = about.noun

METHODS = {"fgsm": "Fast gradient sign (1 step)", "pgd": "Projected gradient descent (10 steps)"}
STRENGTH = (0.0, 0.3, 0.01, 0.1)   # epsilon slider: min, max, step, start (of 1.0 = white)

st.title(f"Adversarial {about.subject}")
st.caption("Change every pixel a little, in the direction that most raises one model's "
           "error, and see whom it fools: the model it was made against, and perhaps the "
           "others too.")


@st.fragment
def attack_board() -> None:
    """The digit, the attack's settings and all that follows from them: a move of the
    strength slider reruns this only, and the title and navigation above stay as they are."""
    pick_col, set_col = st.columns([1, 1], gap="large")
    with pick_col:
        digit = digit_picker.pick_digit_or_stop("attack", "attack it")
    with set_col:
        target = st.segmented_control(
            "Attack this model", list(models), format_func=lambda n: models[n].title,
            default="numpy" if "numpy" in models else next(iter(models)), required=True,
            key="attack_model")
        method = st.segmented_control("Method", list(METHODS), format_func=METHODS.get,
                                      default="fgsm", required=True, key="attack_method")
        lo, hi, step, start = STRENGTH
        st.session_state.setdefault("attack_strength", start)
        epsilon = st.slider("Strength: the most any pixel may change", lo, hi, step=step,
                            key="attack_strength", format="%.2f")

    x = digit.image
    result = adversarial.attack(models[target], x, digit.label, method,
                                adversarial.AttackConfig(epsilon=float(epsilon)))
    limit = max(float(epsilon), 1e-6)  # one colour scale for the whole ball
    with pick_col:
        change = pictures.upscale(pictures.diverging(result.perturbation, limit), 5)
        st.image([pictures.png_url(pictures.framed(pictures.digit_picture(x, 5))),
                  pictures.png_url(pictures.framed(change)),
                  pictures.png_url(pictures.framed(
                      pictures.digit_picture(result.adversarial, 5)))],
                 width=150,
                 caption=[digit.source, f"the change (red +, blue −, at most {epsilon:.2f})",
                          f"the attacked {noun}"])

    label_text = names[result.label]
    why = "its true label" if digit.label is not None else f"{models[target].title}'s own answer"
    st.caption(f"Made against **{models[target].title}** to push it away from **{label_text}** "
               f"({why}): its loss went from {result.loss_before:.2f} to "
               f"{result.loss_after:.2f}. Below, every model reads the attacked {noun} as it "
               f"reads any {noun}, its test-time views included.")
    answers = read(result.adversarial, models, judge_image=False,   # changed on purpose
                   novelty_cfg=novelty.config_for(about.name))
    components.prediction_panel(answers, models, names, key="attack", true_label=digit.label)
    fooled = [models[n].title for n in answers.probs if answers.digit(n) != result.label]
    if epsilon == 0:
        st.caption(f"Strength 0: the {noun} is unchanged.")
    elif fooled:
        st.caption(f"No longer read as {label_text}: {', '.join(fooled)}. A change made against "
                   f"one network that fools another has *transferred*.")
    else:
        st.caption(f"Every model still reads {label_text}: raise the strength or try PGD.")
    st.caption("Pixels are changed by at most the strength (an L-infinity ball) and kept within "
               "black and white. Gradients come from each model's backward pass, by hand in "
               "NumPy (Look inside shows them).")


attack_board()

"""Model maps: the 10,000 test images (digits, or clothing with ``?data=fashion``) as each
model's last hidden layer lays them out."""

import numpy as np
import streamlit as st

from mnist_core.artifacts.files import ArtifactError
from mnist_core.insight.embedding import MAP_SUFFIX, load_maps
from ui import data, dataset, digit_picker, page, pictures
from ui.charts import PLOTLY_CONFIG, map_figure, map_point

models, names = page.start(datasets=True)
about = dataset.info()
noun = about.noun


@st.cache_resource(show_spinner="Loading the maps…", max_entries=2)
def shipped_maps(directory: str, hashes: tuple, wanted: tuple[str, ...]):
    """The shipped maps and test digits, once per server and version of the files
    (``hashes``: theirs in the manifest); read-only, shared by every session."""
    return load_maps(directory, wanted)


st.title("Model maps")
st.caption(f"Each dot is one of {about.title}'s test {noun}s, placed by what the model's "
           f"last hidden layer makes of it (t-SNE): {noun}s the model finds alike sit "
           f"together. Colour is the true label, a dark cross a {noun} the model misread. "
           "Tight, separate islands mean the model tells the classes apart easily.")

try:
    files = data.manifest()["files"]
    maps, digits = shipped_maps(str(data.artifacts_dir()),
                                tuple(files.get(n + MAP_SUFFIX) for n in (*models, "digits")),
                                tuple(models))
except ArtifactError as exc:
    st.error(f"**The model maps could not be loaded.**\n\n{exc}", icon="🚫")
    st.stop()

pick_col, star_col = st.columns([3, 2], gap="large")
with pick_col:
    digit = digit_picker.pick_digit("maps")
stars = {}
with star_col:
    if digit is None:
        st.info("Draw a digit in the small square (or pick another source) to see where "
                "each model puts it.", icon=":material/draw:")
    else:
        stars = {n: maps[n].place_images(models[n], digit.image)[0] for n in maps}
        st.image(pictures.framed(pictures.digit_picture(digit.image, 5)), width=150,
                 caption=f"★ {digit.source}" + (f", true label {names[digit.label]}"
                                                if digit.label is not None else ""))
        st.caption(f"The star on every map: where the {noun} lands among its nearest test "
                   f"{noun}s in the model's eyes. Between two islands, the model hesitates.")
    clicked_slot = st.empty()  # filled below, once the maps say which dot was clicked

selected = None
cols = st.columns(2)
for i, (name, m) in enumerate(maps.items()):
    wrong = int((m.preds != m.labels).sum())
    title = f"{models[name].title}: {wrong} of {len(m.labels):,} misread"
    with cols[i % 2]:
        event = st.plotly_chart(map_figure(m.coords, m.labels, m.preds, names, title,
                                           star=stars.get(name)),
                                config=PLOTLY_CONFIG, key=f"maps-{name}", on_select="rerun",
                                selection_mode="points")
    for point in event.get("selection", {}).get("points", []) if event else []:
        row = map_point(m.labels, len(names), int(point.get("curve_number", -1)),
                        int(point.get("point_index", -1)), point.get("customdata"))
        selected = (name, row) if row is not None else selected

st.caption(f"Hover a dot for its label and the model's answer; click one to see the {noun}. "
           "Drag to pan, scroll to zoom, double-click to reset.")
if selected is not None:
    name, row = selected
    answers = " · ".join(f"{models[n].title}: {names[int(m.preds[row])]}"
                         for n, m in maps.items())
    with clicked_slot.container():
        st.image(pictures.framed(pictures.digit_picture(digits[row].astype(np.float32) / 255,
                                                        4)),
                 width=112, caption=f"Test {noun} #{row}, true label "
                                    f"{names[int(maps[name].labels[row])]}")
        st.caption(f"The dot you clicked. Read as: {answers}")

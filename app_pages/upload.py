"""Upload: photos or scans of handwritten digits, each read by every shipped model."""

import streamlit as st

from mnist_core.reading.inference import read_digits
from mnist_core.preprocess import ImageReadError, NoDigitError, decode_image
from ui import class_data, components, data, page, pictures

models, names = page.start()

st.title("Upload images")
st.caption("Photos, scans or screenshots of handwritten digits: dark ink on light paper or "
           "the other way round. Several digits in one image are read left to right.")

files = st.file_uploader(
    "Images (PNG, JPEG, WebP, BMP, TIFF or GIF; up to 20 MB each)",
    type=["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"],
    accept_multiple_files=True, key="uploads")
if not files:
    st.info("Choose one or more images to see what the models read in them.",
            icon=":material/upload:")
    st.stop()

for number, upload in enumerate(files):
    with st.container(border=True):
        st.markdown(f"**{upload.name}**")
        try:
            image = decode_image(upload.getvalue())
        except ImageReadError as exc:
            reason = str(exc)
            if reason.startswith("not a readable image"):  # drop the decoder's internals
                reason = "not a readable image. Is it really a PNG, JPEG, WebP, BMP, TIFF or GIF?"
            st.error(f"Could not read {upload.name}: {reason}", icon=":material/broken_image:")
            continue
        try:
            readings = read_digits(image, models, refs=data.far_refs())
        except NoDigitError as exc:
            st.image(pictures.thumbnail(image), width=160)
            st.warning(f"No digit found in {upload.name} ({exc}). Try a photo with darker "
                       f"ink or a tighter crop.", icon=":material/search_off:")
            continue
        if len(readings) > 1:
            thumb, answers = st.columns([1, 5])
            thumb.image(pictures.thumbnail(image), caption="uploaded")
            with answers:
                components.sequence_panel(readings, models, names, key=f"upload-{number}")
            continue
        thumb, seen, answers = st.columns([1, 1, 4])
        thumb.image(pictures.thumbnail(image), caption="uploaded")
        with seen:
            components.model_input_view(readings[0].stages.final, caption="what the models see",
                                        scale=6)
        with answers:
            components.prediction_panel(readings[0], models, names, key=f"upload-{number}")
            class_data.flag_wrong(readings[0].stages.final, readings[0].probs, names,
                                  key=f"upload-{number}", source="flag-upload")
        with st.expander("How this image was read"):
            components.stages_view(readings[0].stages, side=120)
            components.views_section(readings[0], models)

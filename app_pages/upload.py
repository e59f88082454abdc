"""Upload: photos or scans of handwritten digits, each read by every shipped model; or, with
clothing chosen (``?data=fashion``), photos of one garment each, read by the clothing models."""

import streamlit as st

from mnist_core.reading.inference import read_digits, read_garment
from mnist_core.preprocess import ImageReadError, NoDigitError, decode_image
from ui import class_data, components, data, dataset, memo, page, pictures
from ui.text import plain

models, names = page.start(datasets=True)
clothing = dataset.current() != "mnist"


def read_file(raw: bytes):
    """One uploaded file, read: ``("error", None, reason)`` when it is not an image,
    ``("none", thumbnail, reason)`` when no digit was found, else ``("read", thumbnail,
    readings)`` (``("garment", thumbnail, reading)`` for clothing). The full-size decode is
    dropped once read; only what the page shows stays."""
    try:
        image = decode_image(raw)
    except ImageReadError as exc:
        return "error", None, str(exc)
    thumb = pictures.thumbnail(image)
    try:
        if clothing:
            return "garment", thumb, read_garment(image, models)
        return "read", thumb, read_digits(image, models, refs=data.far_refs())
    except NoDigitError as exc:   # NoGarmentError too
        return "none", thumb, str(exc)


st.title("Upload images")
if clothing:
    st.caption("A photo of one garment, shoe or bag lying flat or hanging on a plain, even "
               "background (a sheet, a wall, a table), with some background all round. It is "
               "made into what Fashion-MNIST's images are: cut out, its longer side fitted "
               "to 28 pixels, centred, grey on black.")
else:
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
    # A rerun (a "Wrong? It was a…" pill, another file added) keeps each file's reading:
    # a 12-megapixel photo is decoded and read once per upload, not once per click.
    outcome, thumbnail, found = memo.remembered(
        f"upload-{number}", (upload.file_id, memo.model_key(models)),
        lambda: read_file(upload.getvalue()))  # noqa: B023 (called at once)
    with st.container(border=True):
        st.markdown(f"**{plain(upload.name)}**")
        if outcome == "error":
            reason = found
            if reason.startswith("not a readable image"):  # drop the decoder's internals
                reason = "not a readable image. Is it really a PNG, JPEG, WebP, BMP, TIFF or GIF?"
            st.error(f"Could not read {plain(upload.name)}: {reason}",
                     icon=":material/broken_image:")
            continue
        if outcome == "none" and clothing:
            st.image(thumbnail, width=160)
            st.warning(f"Could not make {plain(upload.name)} into a Fashion-MNIST image: "
                       f"{found}.", icon=":material/search_off:")
            continue
        if outcome == "garment":
            thumb, seen, answers = st.columns([1, 1, 4])
            thumb.image(thumbnail, caption="uploaded")
            with seen:
                components.model_input_view(found.image, caption="what the models see",
                                            scale=6)
            with answers:
                components.prediction_panel(found, models, names, key=f"upload-{number}")
            continue
        if outcome == "none":
            st.image(thumbnail, width=160)
            st.warning(f"No digit found in {plain(upload.name)} ({found}). Try a photo with darker "
                       f"ink or a tighter crop.", icon=":material/search_off:")
            continue
        readings = found
        if len(readings) > 1:
            thumb, answers = st.columns([1, 5])
            thumb.image(thumbnail, caption="uploaded")
            with answers:
                components.sequence_panel(readings, models, names, key=f"upload-{number}")
            continue
        thumb, seen, answers = st.columns([1, 1, 4])
        thumb.image(thumbnail, caption="uploaded")
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

"""AppTest (issue 23): every page that follows the dataset choice, opened with
``?data=fashion`` on the SHIPPED clothing models (artifacts/fashion/), shows them with
clothing names; the choice stays from page to page; Draw stays digits; a bad ``?data=``
gets a warning; Upload reads a garment photo and explains one it cannot."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_fashion import CLOTHES, garment_photo

import app_helpers as h
from mnist_core.artifacts.files import load_gallery, load_models
from mnist_core.reading.inference import read_garment
from mnist_core.preprocess import decode_image

TIMEOUT = 180
FASHION = h.REPO / "artifacts" / "fashion"
FOLLOWING = ("compare_models", "confidence", "training_curves", "model_maps", "look_inside",
             "stress_test", "attack", "upload")


@pytest.fixture(scope="module")
def clothing_models():
    return load_models(FASHION)


def open_page(monkeypatch, page: str, data: str | None = "fashion") -> AppTest:
    monkeypatch.delenv("MNIST_STUDIO_ARTIFACTS", raising=False)   # the shipped artifacts
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT)
    if data is not None:
        at.query_params["data"] = data
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def bar_names(at) -> list[list[str]]:
    """The class names under each set of probability bars, in page order."""
    return [[html.unescape(n) for n in re.findall(r"<span>([^<]*)</span>",
                                                  e.proto.body.split('class="mb-x')[1])]
            for e in at.get("html") if 'class="mb"' in e.proto.body]


@pytest.mark.parametrize("page", FOLLOWING)
def test_every_following_page_shows_the_clothing_models(monkeypatch, page, clothing_models):
    at = open_page(monkeypatch, page)
    assert not at.error, [e.value for e in at.error]
    assert at.segmented_control(key="dataset_choice").value == "fashion"
    assert at.query_params["data"] == ["fashion"] or at.query_params["data"] == "fashion"
    text = " ".join([c.value for c in at.caption] + [m.value for m in at.markdown]
                    + [s.value for s in at.subheader])
    assert "digit" not in text.lower(), page
    for names in bar_names(at):
        assert names == list(CLOTHES)


def test_compare_lists_the_four_clothing_models_and_classes(monkeypatch, clothing_models):
    at = open_page(monkeypatch, "compare_models")
    scores = at.dataframe[0].value
    assert list(scores["Model"]) == [m.title for m in clothing_models.values()]
    for name, model in clothing_models.items():
        row = scores[scores["Model"] == model.title].iloc[0]
        assert row["Test accuracy"] == pytest.approx(model.metrics["accuracy"])
    assert list(at.dataframe[1].value["Class"]) == list(CLOTHES)
    assert any("Fashion-MNIST" in c.value for c in at.caption)
    assert any("Test images" in s.value for s in at.subheader)


def test_stress_and_attack_read_a_clothing_test_image(monkeypatch, clothing_models):
    gallery = load_gallery(FASHION)
    for page in ("stress_test", "attack", "look_inside"):
        at = open_page(monkeypatch, page)
        captions = [c for image in at.image for c in image.captions]
        assert any(c.startswith("Fashion-MNIST test image #") for c in captions), captions
        assert at.button(key=f"{'inside' if page == 'look_inside' else page.split('_')[0]}"
                                f"-another").label == "Another test image"
        if page != "look_inside":
            shown = h.probability_bars(at)[0]
            assert set(shown) == {m.title for m in clothing_models.values()}
    assert len(gallery.labels) > 0
    at = open_page(monkeypatch, "attack")
    assert [t.value for t in at.title] == ["Adversarial clothing"]
    assert not [w.value for w in at.warning if "does not look like a digit" in w.value]


def test_the_choice_stays_from_page_to_page_and_draw_stays_digits(monkeypatch):
    at = open_page(monkeypatch, "compare_models")
    at.query_params.pop("data")          # a navigation link carries no query
    at.switch_page("app_pages/training_curves.py").run()
    assert at.segmented_control(key="dataset_choice").value == "fashion"
    titles = set(at.dataframe[0].value["Model"])
    assert titles == {"NumPy MLP", "Keras dense", "Keras CNN", "LeNet-5"}
    at.switch_page("app_pages/draw.py").run()
    assert not at.exception
    assert not at.get("segmented_control") or all(
        s.key != "dataset_choice" for s in at.get("segmented_control"))
    at.switch_page("app_pages/compare_models.py").run()
    assert list(at.dataframe[1].value["Class"]) == list(CLOTHES)
    # and back to digits with the selector
    at.segmented_control(key="dataset_choice").set_value("digits").run()
    assert list(at.dataframe[1].value["Class"]) == [str(d) for d in range(10)]
    assert "data" not in at.query_params


def test_unknown_dataset_in_the_address_warns_and_shows_digits(monkeypatch):
    at = open_page(monkeypatch, "compare_models", data="shoes<script>")
    assert any("shoes" in w.value and "digits" in w.value for w in at.warning)
    assert list(at.dataframe[1].value["Class"]) == [str(d) for d in range(10)]


def test_upload_reads_a_garment_photo_and_explains_a_blank_one(monkeypatch, clothing_models):
    gallery = load_gallery(FASHION)
    row = int(np.flatnonzero(gallery.sample)[0])
    photo = h.png_bytes(garment_photo(gallery.images[row]))
    blank = h.png_bytes(np.full((200, 260, 3), 230, np.uint8))
    at = open_page(monkeypatch, "upload")
    at.file_uploader(key="uploads").set_value(
        [("coat.png", photo, "image/png"), ("blank.png", blank, "image/png")]).run()
    assert not at.exception, [e.message for e in at.exception]
    warnings = [w.value for w in at.warning if "disagree" not in w.value]
    assert len(warnings) == 1 and "blank.png" in warnings[0]
    assert "no garment found" in warnings[0]
    expected = read_garment(decode_image(photo), clothing_models)
    assert [(m.label, m.value) for m in at.metric] == [
        (m.title, CLOTHES[int(expected.probs[n].argmax())])
        for n, m in clothing_models.items()]
    assert bar_names(at) == [list(CLOTHES)]
    captions = [c for image in at.image for c in image.captions]
    assert "what the models see" in captions

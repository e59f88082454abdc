"""AppTest: the classroom pages (Train live, Look inside, Stress test, Kaggle) and how the
user's own model and last drawing reach the other pages."""

from __future__ import annotations

import gzip
import io
import json
import sys
import time
import types

import numpy as np
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

import app_helpers as h
from mnist_core.artifacts.files import load_gallery, load_models
from mnist_core.models.model import Model
from mnist_core.engine.layers import Dense
from mnist_core.models.model import NumpyModel
from test_app_draw import FakeCanvas
from test_app_pages import TIMEOUT, open_page
from ui import training, user_model as user

TRAIN_PAGE = "app_pages/train_live.py"
INSIDE_PAGE = "app_pages/look_inside.py"
STRESS_PAGE = "app_pages/stress_test.py"
KAGGLE_PAGE = "app_pages/kaggle.py"


@pytest.fixture(scope="module")
def gallery(artifacts):
    return load_gallery(artifacts)


@pytest.fixture(scope="module")
def user_model(artifacts) -> Model:
    """A stand-in for a model trained on the Train live page (the fixture's NumPy MLP)."""
    return load_models(artifacts, ["numpy"])["numpy"].renamed(user.USER, user.USER_TITLE)


@pytest.fixture(scope="session")
def mnist_npz(tmp_path_factory):
    """A few thousand digits as keras's ``mnist.npz``, for ``$MNIST_DATA``."""
    d = h.small_dataset()
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    np.savez(path, x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    return path


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def chart_specs(at: AppTest) -> list[str]:
    return [c.proto.spec for c in at.get("plotly_chart")]


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


# ---------------------------------------------------------------------------------------
# Train live
# ---------------------------------------------------------------------------------------

def wait_for_training(at: AppTest, timeout: float = 240) -> training.TrainJob:
    """Poll the session's job until its thread is done, then rerun the page once."""
    job = at.session_state["train_job"]
    deadline = time.monotonic() + timeout
    while not job.finished:
        assert time.monotonic() < deadline, f"training still {job.status} after {timeout} s"
        time.sleep(0.2)
    at.run()
    no_exception(at)
    return job


def train_page(monkeypatch, artifacts, mnist_npz) -> AppTest:
    monkeypatch.setenv("MNIST_DATA", str(mnist_npz))
    at = open_page(monkeypatch, artifacts, TRAIN_PAGE)
    assert not at.error
    return at


def test_train_live_trains_a_numpy_model_and_puts_it_on_the_draw_page(
        monkeypatch, artifacts, mnist_npz):
    at = train_page(monkeypatch, artifacts, mnist_npz)
    assert any("20,000 images" in c.value and "10 epochs" in c.value for c in at.caption)
    assert any("Press **Train**" in i.value or "press **Train**" in i.value for i in at.info)
    at.selectbox(key="train_hidden").set_value("64")
    at.slider(key="train_images").set_value(1000)
    at.slider(key="train_epochs").set_value(2)
    # The worker reads MNIST itself: the server never loads it (nor keeps its 52 MB).
    import ui.training as training_ui

    def no_load(*args, **kwargs):
        raise AssertionError("the server loaded MNIST for a live training")
    training_ui._training_data.clear()
    monkeypatch.setattr(training_ui, "load_dataset", no_load)
    monkeypatch.setattr(training_ui, "load_dataset_in_worker", no_load)
    at.button(key="train").click().run()
    no_exception(at)
    job = wait_for_training(at)
    assert job.status == "done", job.error
    assert len(job.history) == 2 and job.n_train == 1000
    assert [d.kernel.shape for d in job.model.network.of_kind(Dense)] == [(784, 64), (64, 10)]
    shown = metrics(at)
    assert shown["Your test accuracy"].endswith("%")
    assert 0 < float(shown["Your test accuracy"].rstrip("%")) <= 100
    assert "Shipped NumPy MLP" in shown
    # Its percentages are tempered, as the shipped models' are, and the page says with what.
    t = job.model.temperature
    assert t != 1.0 and job.model.metrics["calibration"]["temperature"] == t
    assert any(f"tempered with T = {t:.2f}" in c.value and "validation images" in c.value
               for c in at.caption)
    assert len(at.get("plotly_chart")) == 4  # live curves, result curves, two confusions
    assert not at.button(key="train").disabled

    # The download is made on click: the NumPy network as .npz, loadable again.
    made = {}
    real_add = MediaFileManager.add_deferred

    def add_deferred(self, data, *args, **kwargs):
        made["data"] = data
        return real_add(self, data, *args, **kwargs)
    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    at.run()
    net = NumpyModel.from_bytes(made["data"]()).network
    assert [d.kernel.shape for d in net.of_kind(Dense)] == [(784, 64), (64, 10)]

    # "Use on the Draw page" puts it in this session only; the Draw page shows it.
    at.button(key="use_model").click().run()
    no_exception(at)
    assert at.session_state["user_model"] is job.model
    assert at.button(key="drop_model")
    fake = FakeCanvas(h.one_stroke())
    module = types.ModuleType("streamlit_drawable_canvas")
    module.st_canvas = fake
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)
    at.switch_page("app_pages/draw.py").run()
    no_exception(at)
    assert "Your model" in metrics(at)
    assert at.session_state["last_digit"].shape == (28, 28)


def test_train_live_stop_ends_training_early(monkeypatch, artifacts, mnist_npz):
    at = train_page(monkeypatch, artifacts, mnist_npz)
    at.selectbox(key="train_hidden").set_value("512, 512")
    at.select_slider(key="train_batch").set_value(16)
    at.slider(key="train_epochs").set_value(10)
    at.toggle(key="train_augment").set_value(True)
    at.button(key="train").click().run()
    no_exception(at)
    assert at.button(key="train").disabled  # settings are locked while it trains
    at.button(key="stop_training").click().run()
    job = wait_for_training(at)
    assert job.status == "stopped"
    assert 1 <= len(job.history) < 10
    assert any("You stopped the training" in i.value for i in at.info)
    assert "Your test accuracy" in metrics(at)


def test_train_live_waits_while_another_session_trains(monkeypatch, artifacts, mnist_npz):
    at = train_page(monkeypatch, artifacts, mnist_npz)
    slot = training.training_slot()
    assert slot.try_acquire("another session")
    try:
        at.run()
        assert any("Someone else is training" in i.value for i in at.info)
        at.button(key="train").click().run()
        no_exception(at)
        assert any("Someone else is training" in w.value for w in at.warning)
        assert "train_job" not in at.session_state
    finally:
        slot.release()


def test_train_live_without_data_names_mnist_data(monkeypatch, artifacts, tmp_path):
    monkeypatch.setenv("MNIST_DATA", str(tmp_path / "nowhere"))
    at = open_page(monkeypatch, artifacts, TRAIN_PAGE)
    at.button(key="train").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "MNIST_DATA" in at.error[0].value


def test_train_live_offers_each_model_and_the_numpy_choices(monkeypatch, artifacts, mnist_npz):
    at = train_page(monkeypatch, artifacts, mnist_npz)
    at.segmented_control(key="train_optimizer").set_value("sgd").run()
    assert at.select_slider(key="train_lr").value == 1.0  # plain GD needs a bigger step
    at.segmented_control(key="train_activation").set_value("sigmoid").run()
    for name in ("dense", "cnn"):
        at.segmented_control(key="train_model").set_value(name).run()
        no_exception(at)
        assert at.select_slider(key="train_lr").value == 3e-3  # back to Adam's rate
        assert "train_optimizer" not in [w.key for w in at.segmented_control]
    assert at.selectbox(key="train_filters").value == "16, 32"


# ---------------------------------------------------------------------------------------
# Look inside
# ---------------------------------------------------------------------------------------

def captions(at: AppTest) -> list[str]:
    return [c for img in at.image for c in img.captions]


def test_look_inside_shows_templates_feature_maps_and_saliency(
        monkeypatch, artifacts, user_model):
    at = open_page(monkeypatch, artifacts, INSIDE_PAGE)
    assert not at.error
    assert at.segmented_control(key="inside-source").value == "test"  # no drawing yet
    assert "First-layer weights as 28×28 templates" in texts(at.markdown)
    assert any("units above zero" in c for c in captions(at))
    titles = [m.title for m in load_models(artifacts).values()]
    saliency = [c for c in captions(at) if c.split(":")[0] in titles]
    assert len(saliency) == 2 * len(titles)  # gradient and occlusion, every model
    at.segmented_control(key="inside_model").set_value("lenet5").run()
    no_exception(at)
    assert "First-layer filters" in texts(at.markdown)
    assert sum("maps of" in c for c in captions(at)) == 2  # LeNet-5's two conv layers
    at.selectbox(key="inside_target").set_value(3).run()
    no_exception(at)
    assert sum(c.endswith(")") and ": 3 (" in c for c in captions(at)) == 2 * len(titles)
    row = at.session_state["classroom_test_row"]
    for _ in range(5):  # a random pick: the same digit twice in a row is possible
        at.button(key="inside-another").click().run()
        no_exception(at)
        if at.session_state["classroom_test_row"] != row:
            break
    assert at.session_state["classroom_test_row"] != row


def test_look_inside_uses_the_last_drawing_and_your_model(monkeypatch, artifacts, user_model,
                                                         gallery):
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT)
    at.session_state["last_digit"] = gallery.images[0].astype(np.float32) / 255
    at.session_state["user_model"] = user_model
    at.run()
    at.switch_page(INSIDE_PAGE).run()
    no_exception(at)
    assert at.segmented_control(key="inside-source").value == "drawing"
    assert any("your last drawing" in c for c in captions(at))
    assert any(c.startswith("Your model:") for c in captions(at))
    at.segmented_control(key="inside_model").set_value(user.USER).run()
    no_exception(at)
    assert any("units above zero" in c for c in captions(at))


def test_look_inside_draw_here(monkeypatch, artifacts):
    at = open_page(monkeypatch, artifacts, INSIDE_PAGE)
    module = types.ModuleType("streamlit_drawable_canvas")
    module.st_canvas = FakeCanvas(None)
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)
    at.segmented_control(key="inside-source").set_value("draw").run()
    no_exception(at)
    assert any("Draw a digit in the small square" in i.value for i in at.info)
    module.st_canvas = FakeCanvas(h.canvas_rgba([[(100, 30), (100, 170)]], size=200, width=16))
    at.run()
    no_exception(at)
    assert any("the digit drawn here" in c for c in captions(at))


# ---------------------------------------------------------------------------------------
# Stress test
# ---------------------------------------------------------------------------------------

def test_stress_rotation_changes_the_image_and_the_answers(monkeypatch, artifacts):
    at = open_page(monkeypatch, artifacts, STRESS_PAGE)
    assert not at.error
    image_before = at.image[0].value[1]
    (bars_before,) = h.probability_bars(at)
    answers_before = metrics(at)
    assert len(answers_before) == len(load_models(artifacts))
    at.slider(key="stress_rotate").set_value(90).run()
    no_exception(at)
    assert at.image[0].value[1] != image_before  # the transformed digit
    (bars_after,) = h.probability_bars(at)
    assert bars_after != bars_before             # every model's bars were recomputed
    marker = json.loads(chart_specs(at)[0])["layout"]["shapes"][0]
    assert marker["x0"] == 90  # the sweep marks the current rotation
    for sweep in ("noise", "thickness", "scale"):
        at.segmented_control(key="stress_sweep").set_value(sweep).run()
        no_exception(at)
        assert len(at.get("plotly_chart")) == 1 and len(h.probability_bars(at)) == 1
    at.button(key="stress_reset").click().run()
    no_exception(at)
    assert at.slider(key="stress_rotate").value == 0
    assert at.image[0].value[1] == image_before



def test_stress_slider_of_the_swept_change_keeps_the_sweep_and_its_pictures(monkeypatch,
                                                                            artifacts):
    """The sweep runs the swept change over its whole range: moving that slider only moves
    the dotted line, so the sweep is not run again (the curves stay the same), while
    another slider changes every point and runs it again. The unchanged digit's picture is
    not encoded again."""
    from mnist_core.reading import stress
    from ui import pictures

    sweeps, encoded = [], []
    real_sweep, real_encode = stress.sweep, pictures.Image.fromarray
    monkeypatch.setattr(stress, "sweep", lambda *a, **k: sweeps.append(a[3]) or
                        real_sweep(*a, **k))
    at = open_page(monkeypatch, artifacts, STRESS_PAGE)
    no_exception(at)
    assert sweeps == ["rotate"]
    traces = json.loads(chart_specs(at)[0])["data"]
    monkeypatch.setattr(pictures.Image, "fromarray",
                        lambda *a, **k: encoded.append(1) or real_encode(*a, **k))
    at.slider(key="stress_rotate").set_value(30).run()
    no_exception(at)
    assert sweeps == ["rotate"]                     # the rotation sweep was kept
    after = json.loads(chart_specs(at)[0])
    assert after["data"] == traces                  # the same curves
    assert after["layout"]["shapes"][0]["x0"] == 30  # the line moved
    assert len(encoded) == 1                        # the moved digit only, not the original
    at.slider(key="stress_scale").set_value(0.8).run()
    no_exception(at)
    assert sweeps == ["rotate", "rotate"]           # another slider: every point changed
    assert json.loads(chart_specs(at)[0])["data"] != traces

# ---------------------------------------------------------------------------------------
# Kaggle
# ---------------------------------------------------------------------------------------

def kaggle_csv(images: np.ndarray, labels: np.ndarray | None = None, header: bool = True
               ) -> bytes:
    flat = images.reshape(len(images), -1).astype(int)
    cols = [f"pixel{i}" for i in range(784)]
    if labels is not None:
        flat = np.column_stack([labels.astype(int), flat])
        cols = ["label"] + cols
    lines = [",".join(cols)] if header else []
    lines += [",".join(map(str, row)) for row in flat]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def downloads(monkeypatch):
    """Everything the page hands to st.download_button: ``[(bytes, mimetype, filename)]``."""
    seen = []
    real = MemoryMediaFileStorage.load_and_get_id

    def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):
        seen.append((path_or_data, mimetype, filename))
        return real(self, path_or_data, mimetype, kind, filename)
    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", load_and_get_id)
    return seen


@pytest.mark.parametrize("packing", ["csv", "zip", "gz"])
def test_kaggle_writes_a_submission(monkeypatch, artifacts, gallery, downloads, packing):
    images = gallery.images[:7]
    raw = kaggle_csv(images)
    name = "test.csv"
    if packing == "zip":
        import zipfile
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("sample_submission.csv", "ImageId,Label\n1,0\n")
            z.writestr("test.csv", raw)
        raw, name = buf.getvalue(), "digit-recognizer.zip"
    elif packing == "gz":
        raw, name = gzip.compress(raw), "test.csv.gz"
    at = open_page(monkeypatch, artifacts, KAGGLE_PAGE)
    assert any("Get `test.csv`" in i.value for i in at.info)
    at.file_uploader(key="kaggle_upload").set_value((name, raw, "text/csv")).run()
    no_exception(at)
    assert not at.error
    assert any("Read 7 digits" in s.value for s in at.success)
    at.segmented_control(key="kaggle_model").set_value("numpy").run()
    at.button(key="kaggle_predict").click().run()
    no_exception(at)
    assert at.download_button(key="kaggle_download")
    csv = [d for d, mime, fn in downloads if fn == "submission.csv"][-1]
    text = csv.decode() if isinstance(csv, bytes) else csv
    lines = text.strip().split("\n")
    assert lines[0] == "ImageId,Label"
    assert len(lines) == 1 + len(images)
    expected = load_models(artifacts, ["numpy"])["numpy"].predict_proba(
        images.astype(np.float32) / 255).argmax(1)
    assert lines[1:] == [f"{i},{d}" for i, d in enumerate(expected, start=1)]


@pytest.mark.parametrize("case, words", [
    ("train", "label"),
    ("columns", "784"),
    ("text", ""),
    ("zip-without-test", "expected test.csv"),
])
def test_kaggle_malformed_csv_is_a_clear_error(monkeypatch, artifacts, gallery, case, words):
    images = gallery.images[:3]
    if case == "train":
        raw = kaggle_csv(images, gallery.labels[:3])
    elif case == "columns":
        raw = b"a,b,c\n1,2,3\n4,5,6\n"
    elif case == "text":
        raw = kaggle_csv(images).replace(b"\n0,", b"\nzero,", 1)
    else:
        import zipfile
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("train.csv", "x")
            z.writestr("other.csv", "y")
        raw = buf.getvalue()
    at = open_page(monkeypatch, artifacts, KAGGLE_PAGE)
    name = "upload.zip" if case.startswith("zip") else "test.csv"
    at.file_uploader(key="kaggle_upload").set_value((name, raw, "text/csv")).run()
    no_exception(at)
    assert len(at.error) == 1
    assert "not a Digit Recognizer test file" in at.error[0].value
    assert words.lower() in at.error[0].value.lower()
    assert "kaggle_predict" not in [b.key for b in at.button]
    assert not at.download_button


def test_the_pin_limit_counts_the_client_behind_a_trusted_proxy(monkeypatch):
    """Behind nginx the server sees 127.0.0.1 for everyone; the address it forwards is
    the client's, but only when the proxy is trusted."""
    from types import SimpleNamespace

    from ui import class_data
    request = SimpleNamespace(ip_address="127.0.0.1",
                              headers={"X-Forwarded-For": "198.51.100.9"})
    monkeypatch.setattr(class_data.st, "context", request)
    monkeypatch.delenv(class_data.PROXIES_ENV, raising=False)
    assert class_data.client_id() == "ip:198.51.100.9"          # loopback trusted by default
    monkeypatch.setenv(class_data.PROXIES_ENV, "10.0.0.0/8")
    assert class_data.client_id() == "ip:127.0.0.1"             # not a proxy of ours
    monkeypatch.setenv(class_data.PROXIES_ENV, "nginx")          # unparsable: none trusted
    assert class_data.client_id() == "ip:127.0.0.1"

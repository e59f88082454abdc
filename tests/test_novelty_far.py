"""Not a digit, the far signal (mnist_core/novelty.py): an input far, in a model's last
hidden layer, from every digit of its shipped map. Letters and scribbles are flagged more
than real digits, a mapped digit never is, the thresholds of NoveltyConfig are obeyed,
models without their own map do not vote, and Draw says so. Also the Upload case of a
photo of noise that the digit splitter cut into slices that looked like digits."""

from __future__ import annotations

import sys
import types
from dataclasses import replace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app_helpers as h
from conftest import SHIPPED_ARTIFACTS
from mnist_core.reading import novelty
from mnist_core.artifacts.files import load_models
from mnist_core.datasets.data import load_dataset, split_validation, to_float
from mnist_core.insight.embedding import load_digits
from mnist_core.reading.inference import read_digits, read_input
from mnist_core.preprocess import preprocess


@pytest.fixture(scope="module")
def shipped():
    return load_models(SHIPPED_ARTIFACTS)


@pytest.fixture(scope="module")
def refs():
    return novelty.references(SHIPPED_ARTIFACTS)


def far_flags(models, refs, x: np.ndarray, cfg: novelty.NoveltyConfig = novelty.DEFAULT
              ) -> np.ndarray:
    """Whether the far signal alone flags each of ``x`` ``(N, 28, 28)``."""
    ratios = novelty.far_ratios(models, x, refs, cfg)
    votes = np.sum([r > cfg.far_ratio for r in ratios.values()], axis=0)
    return votes >= cfg.far_min_models


def finals(kind: str, n: int, seed: int) -> np.ndarray:
    return np.stack([preprocess(img, canvas=c).final
                     for _, img, c in novelty.non_digits(n, seed=seed, kinds=(kind,))])


def test_every_shipped_model_has_a_map_that_votes(shipped, refs):
    assert set(refs) == set(shipped)
    assert all(refs[n].matches(m) for n, m in shipped.items())
    assert all(r.radius > 0 for r in refs.values())


def test_letters_and_scribbles_are_far_more_often_than_real_digits(shipped, refs, mnist_dir):
    """Fixed samples (seed 11: neither the seed thresholds were chosen on, 1, nor the one
    the benchmark measures, 7). Measured when written: scribbles 37.5%, letters 5% (of 40
    each), MNIST validation digits 0% (of 300)."""
    scribbles = far_flags(shipped, refs, finals("scribble", 40, seed=11)).mean()
    letters = far_flags(shipped, refs, finals("letters", 40, seed=11)).mean()
    data = load_dataset(mnist_dir)
    val = split_validation(data.x_train, data.y_train, 5000, 0).x_val[:300]
    digits = far_flags(shipped, refs, to_float(val)).mean()
    assert scribbles >= 0.25
    assert (scribbles + letters) / 2 >= 0.12
    assert digits <= 0.01
    assert scribbles > digits + 0.2 and letters > digits


def test_a_mapped_digit_is_never_far(shipped, refs):
    """Every one of the 10,000 digits the maps hold: largest ratio measured 1.16 (lenet5),
    against the threshold 1.45."""
    x = to_float(load_digits(SHIPPED_ARTIFACTS))
    ratios = novelty.far_ratios(shipped, x, refs)
    assert len(ratios) == 4
    worst = max(float(r.max()) for r in ratios.values())
    assert worst < novelty.DEFAULT.far_ratio, worst
    assert not far_flags(shipped, refs, x).any()


def test_config_thresholds_are_obeyed(shipped, refs):
    letter = finals("letters", 20, seed=1)[3]   # a "t" every model reads as 8: only far
    probs = read_input(letter, shipped)
    verdict = novelty.check(probs, letter, models=shipped, refs=refs)
    assert verdict.reasons == (novelty.FAR_REASON,), verdict
    top = max(verdict.far.values())
    assert top > novelty.DEFAULT.far_ratio
    above = replace(novelty.DEFAULT, far_ratio=top + 0.01)
    assert not novelty.check(probs, letter, above, models=shipped, refs=refs).flagged
    many = replace(novelty.DEFAULT, far_min_models=5)        # more than the 4 that vote
    assert not novelty.check(probs, letter, many, models=shipped, refs=refs).flagged
    n_far = sum(r > novelty.DEFAULT.far_ratio for r in verdict.far.values())
    exact = replace(novelty.DEFAULT, far_min_models=n_far)
    assert novelty.check(probs, letter, exact, models=shipped, refs=refs).flagged
    # Ratios given directly, as the benchmark does for many inputs at once.
    assert novelty.check(probs, letter, far={"cnn": 1.46}).reasons == (novelty.FAR_REASON,)
    assert not novelty.check(probs, letter, far={"cnn": 1.44}).flagged
    two = replace(novelty.DEFAULT, far_min_models=2)
    assert not novelty.check(probs, letter, two, far={"cnn": 2.0, "numpy": 1.0}).flagged
    assert novelty.check(probs, letter, two, far={"cnn": 2.0, "numpy": 1.5}).flagged


def test_the_radius_follows_the_quantile_and_neighbours(shipped):
    refs_lo = novelty.references(SHIPPED_ARTIFACTS, replace(novelty.DEFAULT, far_quantile=0.5))
    refs_hi = novelty.references(SHIPPED_ARTIFACTS, replace(novelty.DEFAULT, far_quantile=0.999))
    refs_k1 = novelty.references(SHIPPED_ARTIFACTS, replace(novelty.DEFAULT, far_neighbours=1))
    for name in shipped:
        assert refs_lo[name].radius < novelty.references(SHIPPED_ARTIFACTS)[name].radius \
            < refs_hi[name].radius
        assert refs_k1[name].radius < novelty.references(SHIPPED_ARTIFACTS)[name].radius


def test_models_without_their_own_map_do_not_vote(shipped, refs, models):
    """"Your model" (no map) and a model of the same name but other weights (the test
    fixture's numpy, trained for one epoch) are left out; with none voting, no far flag."""
    x = finals("letters", 20, seed=1)[3:4]
    yours = {"yours": shipped["cnn"].renamed("yours", "Your model")}
    assert novelty.far_ratios(yours, x, refs) == {}
    assert not refs["numpy"].matches(models["numpy"])
    assert novelty.far_ratios({"numpy": models["numpy"]}, x, refs) == {}
    mixed = {**yours, "cnn": shipped["cnn"]}
    assert set(novelty.far_ratios(mixed, x, refs)) == {"cnn"}
    verdict = novelty.check(read_input(x[0], yours), x[0], models=yours, refs=refs)
    assert verdict.far == {} and novelty.FAR_REASON not in verdict.reasons


def test_missing_maps_leave_the_far_signal_out(tmp_path):
    assert novelty.references(tmp_path) == {}


# ---------------------------------------------------------------------------------------
# Upload: a photo of pure noise
# ---------------------------------------------------------------------------------------

def noise_photo() -> np.ndarray:
    """The benchmark's second noise photo (seed 7): the digit finder used to cut it into a
    "1" and an "8", neither flagged."""
    return novelty.non_digits(2, seed=7, kinds=("noise",))[1][1]


def test_a_photo_of_noise_is_read_whole_and_flagged(shipped):
    readings = read_digits(noise_photo(), shipped)
    assert len(readings) == 1
    verdict = novelty.check(readings[0].probs, readings[0].stages.final)
    assert novelty.BLOT_REASON in verdict.reasons or novelty.INK_REASON in verdict.reasons
    for _, photo, canvas in novelty.non_digits(10, seed=3, kinds=("noise",)):
        for r in read_digits(photo, shipped, canvas=canvas):
            assert novelty.check(r.probs, r.stages.final).flagged


def test_upload_says_a_photo_of_noise_does_not_look_like_a_digit(monkeypatch, artifacts):
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=180).run()
    at.switch_page("app_pages/upload.py").run()
    at.file_uploader(key="uploads").set_value(
        [("noise.png", h.png_bytes(noise_photo()), "image/png")]).run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("does not look like a digit" in w.value for w in at.warning), \
        [w.value for w in at.warning]
    assert at.metric and all(m.value == "?" for m in at.metric), [m.value for m in at.metric]


# ---------------------------------------------------------------------------------------
# Draw: a letter, with the shipped models and maps
# ---------------------------------------------------------------------------------------

def test_draw_says_a_letter_is_unlike_any_digit(monkeypatch):
    from test_app_draw import FakeCanvas

    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(SHIPPED_ARTIFACTS))
    letter = novelty.non_digits(20, seed=1, kinds=("letters",))[3][1]   # a "t"
    module = types.ModuleType("streamlit_drawable_canvas")
    module.st_canvas = FakeCanvas(letter)
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=180).run()
    assert not at.exception, [e.message for e in at.exception]
    warnings = [w.value for w in at.warning if "does not look like a digit" in w.value]
    assert warnings and novelty.FAR_REASON in warnings[0], [w.value for w in at.warning]
    assert at.metric and all(m.value == "?" for m in at.metric)


def test_the_maps_are_read_once_when_two_threads_ask_at_once(monkeypatch):
    """The app starts reading the maps in the background when its models load; a first
    drawing arriving meanwhile waits for that reading instead of starting its own."""
    import threading

    made = []
    real = novelty.FarReference.__init__

    def counting(self, *args, **kwargs):
        made.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(novelty.FarReference, "__init__", counting)
    novelty._references.cache_clear()
    results = []
    threads = [threading.Thread(target=lambda: results.append(novelty.references(SHIPPED_ARTIFACTS)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    novelty._references.cache_clear()  # later tests build their own, unpatched
    assert len(results) == 2 and results[0] is results[1] and len(results[0]) == 4
    assert len(made) == 4   # one reference per model map, not two

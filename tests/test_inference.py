"""Reading several digits with the shipped models: where shape alone cannot tell one wide
digit from two touching ones, the models' confidence decides (``read_digits``).

Drawings are polylines in canvas pixels, drawn as the browser canvas would return them
(``app_helpers.canvas_rgba``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import app_helpers as h
from mnist_core import preprocess as P
from mnist_core.artifacts.files import DEFAULT_DIR, load_models
from mnist_core.reading.inference import read_digit, read_digits, read_input


@pytest.fixture(scope="module")
def models():
    if not (DEFAULT_DIR / "manifest.json").is_file():
        pytest.fail(f"no shipped artifacts in {DEFAULT_DIR}; run `python -m mnist_core train`")
    return load_models(DEFAULT_DIR)


def ellipse(cx, cy, rx, ry):
    """A closed ellipse as one polyline."""
    return cv2.ellipse2Poly((cx, cy), (rx, ry), 0, 0, 360, 10).tolist()


# A thick brush: the rims meet. 1.4x as wide as tall, too narrow for shape alone to cut.
TWO_TOUCHING_ZEROS = h.canvas_rgba([ellipse(95, 140, 40, 60), ellipse(192, 140, 40, 60)])
# As wide as the two 0s, with a long base stroke: one digit.
WIDE_TWO = h.canvas_rgba([[(60, 90), (100, 60), (150, 70), (160, 110), (70, 200), (250, 200)]],
                         width=20)
FLAT_ZERO = h.canvas_rgba([ellipse(140, 140, 100, 50)])               # twice as wide as tall
LONG_SEVEN = h.canvas_rgba([[(28, 84), (252, 84), (140, 210)]])
# As drawn in the browser with the default 22 px brush: a 2, then two 0s whose rims touch.
# The column with the least ink lies inside a 0; the waist between them does not.
TWO_HUNDRED = h.canvas_rgba([
    [(22, 106), (45, 84), (73, 101), (67, 134), (22, 190), (84, 190)],
    ellipse(126, 140, 28, 50), ellipse(196, 140, 28, 50)])


def test_two_touching_zeros_are_read_as_two(models):
    assert len(P.segment(TWO_TOUCHING_ZEROS)) == 1         # shape alone keeps them whole
    readings = read_digits(TWO_TOUCHING_ZEROS, models)
    assert len(readings) == 2
    assert readings[0].stages.box[0] < readings[1].stages.box[0]
    for r in readings:
        assert r.digit("cnn") == 0
        x, _, w, _ = r.stages.box                         # each is one 0, not a cut half
        assert 85 <= w <= 115


@pytest.mark.parametrize("img,digit,shape_cuts", [(WIDE_TWO, 2, False), (FLAT_ZERO, 0, True),
                                                  (LONG_SEVEN, 7, True)],
                         ids=["wide-two", "flat-zero", "long-seven"])
def test_a_wide_digit_stays_one_digit(models, img, digit, shape_cuts):
    # The 0 and the 7 are wide enough that shape alone would cut them in two.
    readings = read_digits(img, models)
    assert [r.digit("cnn") for r in readings] == [digit]
    assert len(P.segment(img)) == (2 if shape_cuts else 1)


def test_the_judge_is_not_asked_about_narrow_digits():
    asked = []

    def judge(x):
        asked.append(len(x))
        return np.full((len(x), 10), 0.1, np.float32)

    assert len(P.segment(h.one_stroke(), judge=judge)) == 1 and asked == []
    # A wide blob is put to it: whole, and cut into 2 and 3 in every way.
    assert len(P.segment(WIDE_TWO, judge=judge)) == 1
    assert asked == [1 + len(P.CUTS) * (2 + 3)]


def test_a_row_with_touching_round_digits_is_read_digit_by_digit(models):
    readings = read_digits(TWO_HUNDRED, models)
    for name in models:
        assert "".join(str(r.digit(name)) for r in readings) == "200", name


def test_a_digit_reads_the_same_on_every_page(models):
    # The Draw page reads a drawing's final image; the gallery, the test digits and the
    # stress test hand read_input a 28x28 image: the same image gets the same bars.
    drawn = read_digit(LONG_SEVEN, models, canvas=True)
    alone = read_input(drawn.stages.final, models)
    assert set(alone) == set(models)
    for name in models:
        assert alone[name].shape == (10,)
        np.testing.assert_array_equal(alone[name], drawn.probs[name])
    # A gallery reads many at once; each digit still gets its own bars.
    gallery = np.stack([h.render_digit(3, np.random.default_rng(0)) / 255, drawn.stages.final])
    batch = read_input(gallery.astype(np.float32), models)
    for name in models:
        assert batch[name].shape == (2, 10)
        np.testing.assert_allclose(batch[name][1], drawn.probs[name], atol=1e-5)
    with pytest.raises(ValueError):
        read_input(np.zeros((20, 20), np.float32), models)


def test_the_canvas_path_reads_a_row_as_the_full_path_does(models):
    read = [read_digits(TWO_HUNDRED, models, canvas=canvas) for canvas in (False, True)]
    for name in models:
        assert ["".join(str(r.digit(name)) for r in rs) for rs in read] == ["200", "200"], name


def test_the_split_judge_reads_with_the_networks_own_softmax(monkeypatch, models):
    """A fitted temperature reshapes every reading (below 1, towards 1); the judge that decides how many
    digits touching strokes hold must not see it, or its margin means something else."""
    import copy

    from mnist_core.reading import inference

    x = np.zeros((1, 28, 28), np.float32)
    x[0, 6:22, 12:16] = 1.0
    seen = {}

    def segment(image, config, judge, canvas=False):
        seen["judge"] = judge(x)
        raise P.NoDigitError("stop here")

    monkeypatch.setattr(inference, "segment", segment)
    sharp = {}
    for name, m in models.items():
        sharp[name] = copy.copy(m)
        sharp[name].temperature = 3.0   # far from 1 either way: the judge must not care
    with pytest.raises(P.NoDigitError):
        read_digits(np.zeros((50, 50), np.uint8), sharp)
    from mnist_core.insight.calibration import untempered

    own = np.mean([untempered(m).predict_proba(x) for m in models.values()], 0)
    tempered = np.mean([m.predict_proba(x) for m in sharp.values()], 0)
    assert not np.allclose(own, tempered, atol=1e-3)
    np.testing.assert_allclose(seen["judge"], own, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Whole readings: views, probabilities and the not-a-digit verdict in one call
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def refs():
    from mnist_core.reading import novelty
    return novelty.references(DEFAULT_DIR)


def test_read_gives_views_probabilities_and_the_verdict_of_a_model_input(models, refs):
    from mnist_core.reading import novelty
    from mnist_core.reading.inference import read
    from mnist_core.models.views import model_config, named_views

    x = read_digit(LONG_SEVEN, models, canvas=True).stages.final
    reading = read(x, models, refs)
    assert reading.stages is None and reading.image.shape == (28, 28)
    for name, m in models.items():
        np.testing.assert_array_equal(reading.probs[name], read_input(x, models)[name])
        want = named_views(x, model_config(m))
        assert [c for c, _ in reading.views[name]] == [c for c, _ in want]
        for (_, got), (_, img) in zip(reading.views[name], want):
            np.testing.assert_array_equal(got, img)
        assert reading.views[name][0][0] == "as is"
        np.testing.assert_array_equal(reading.views[name][0][1], x)
    # The verdict is novelty.check's, the far signal of the shipped maps included.
    alone = novelty.check(reading.probs, x, models=models, refs=refs)
    assert reading.verdict.reasons == alone.reasons and not reading.flagged
    assert reading.verdict.far == pytest.approx(dict(alone.far), rel=1e-5)
    assert set(reading.verdict.far) == set(refs)
    # Several at once: one reading each, each the same as alone.
    noise = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    both = read(np.stack([x, noise]), models, refs)
    assert [r.flagged for r in both] == [False, True]
    assert novelty.INK_REASON in both[1].verdict.reasons
    for name in models:
        np.testing.assert_allclose(both[0].probs[name], reading.probs[name], atol=1e-5)
    # Without maps, or judging the models' doubt alone, the far signal does not vote.
    assert read(x, models).verdict.far == {}
    doubt_only = read(noise, models, refs, judge_image=False).verdict
    assert doubt_only.ink is None and doubt_only.far == {}
    assert set(doubt_only.reasons) <= {novelty.DOUBT_REASON}


def test_read_digits_carries_the_verdict_and_the_views_of_every_digit(models, refs):
    from mnist_core.reading import novelty

    readings = read_digits(TWO_HUNDRED, models, canvas=True, refs=refs)
    assert len(readings) == 3
    for r in readings:
        np.testing.assert_array_equal(r.image, r.stages.final)
        alone = novelty.check(r.probs, r.image, models=models, refs=refs)
        assert r.verdict.reasons == alone.reasons and not r.flagged
        assert set(r.views) == set(models)
    photo = novelty.non_digits(2, seed=7, kinds=("noise",))[1][1]
    (whole,) = read_digits(photo, models, refs=refs)
    assert whole.flagged


def test_a_reading_runs_each_model_once_and_takes_the_features_from_that_pass(
        monkeypatch, models, refs):
    """``read`` gives probabilities and, for each model voting on the far signal, its
    features from one forward pass per model per batch; the verdict is the one features
    computed in a pass of their own give (``novelty.far_ratios``)."""
    from mnist_core.reading import inference, novelty

    calls = []
    for name, m in models.items():   # maps checked first: only the reading's passes count
        assert name not in refs or refs[name].matches(m)
        for method in ("predict_proba", "predict_with_features"):
            real = getattr(m, method)
            monkeypatch.setattr(m, method, lambda x, _real=real, _key=(name, method):
                                (calls.append(_key), _real(x))[1])
    one_pass = sorted((n, "predict_with_features" if n in refs else "predict_proba")
                      for n in models)
    x = np.stack([read_digit(LONG_SEVEN, models, canvas=True).stages.final] * 3)
    calls.clear()
    readings = inference.read(x, models, refs)
    assert sorted(calls) == one_pass
    separate = novelty.far_ratios(models, x, refs)
    assert set(separate) == set(refs)
    for i, reading in enumerate(readings):
        alone = novelty.check(reading.probs, x[i], far={k: float(v[i]) for k, v in separate.items()})
        assert alone.reasons == reading.verdict.reasons
        assert set(alone.far) == set(reading.verdict.far)
        for name, ratio in alone.far.items():
            assert reading.verdict.far[name] == pytest.approx(ratio, rel=1e-4)
    calls.clear()
    read_digits(TWO_HUNDRED, models, canvas=True, refs=refs)  # the splitter's judge reads too
    assert sorted(c for c in calls if c[1] == "predict_with_features") == \
        sorted((n, "predict_with_features") for n in refs)

"""``python -m mnist_core``: the predict/evaluate JSON contracts and a tiny end-to-end train."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import draw_digit, make_dataset, run_cli, write_idx_folder

from mnist_core.artifacts.files import MANIFEST, load_gallery, load_models, read_manifest, sha256

NAMES = ["numpy", "lenet5"]  # the models in the tiny artifacts folder


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_prediction(entry: dict, names: list[str]) -> None:
    assert set(entry["models"]) == set(names)
    for answer in entry["models"].values():
        probs = answer["probabilities"]
        assert len(probs) == 10 and all(isinstance(p, float) and 0 <= p <= 1 for p in probs)
        assert sum(probs) == pytest.approx(1, abs=1e-4)
        assert isinstance(answer["digit"], int) and answer["digit"] == int(np.argmax(probs))


# ---------------------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------------------

def test_predict_json_one_line_per_input_in_order(tiny_artifacts, tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), draw_digit(3))
    (tmp_path / "bad.bin").write_bytes(b"\x00\x01 definitely not an image" * 10)
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((280, 280), 255, np.uint8))
    cv2.imwrite(str(tmp_path / "c.jpg"), draw_digit(7))
    inputs = [str(tmp_path / n) for n in ("a.png", "bad.bin", "blank.png", "c.jpg", "gone.png")]

    proc = run_cli("predict", "--json", "--artifacts", str(tiny_artifacts.directory), *inputs)
    assert proc.returncode == 1, proc.stderr               # some inputs failed (issue #25)
    assert "3 of 5 images could not be read" in proc.stderr
    lines = json_lines(proc.stdout)
    assert len(proc.stdout.strip().splitlines()) == len(inputs)  # nothing else on stdout
    assert [line["path"] for line in lines] == inputs
    good, bad, blank, jpeg, gone = lines
    for entry in (good, jpeg):
        assert "error" not in entry
        assert_prediction(entry, NAMES)
    for entry in (bad, blank, gone):
        assert set(entry) == {"path", "error"} and entry["error"]
    assert "not a readable image" in bad["error"]
    assert "blank" in blank["error"]


def test_predict_without_artifacts_fails_cleanly(tmp_path):
    proc = run_cli("predict", "--json", "--artifacts", str(tmp_path / "none"), "x.png")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "manifest.json is missing" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------

def test_evaluate_json(tiny_artifacts, tmp_path):
    data_dir = write_idx_folder(tmp_path / "data", tiny_artifacts.data)
    proc = run_cli("evaluate", "--json", "--artifacts", str(tiny_artifacts.directory),
                   "--data", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    results = json.loads(proc.stdout)
    assert list(results) == NAMES
    loaded = load_models(tiny_artifacts.directory)
    for name, metrics in results.items():
        assert metrics["n"] == len(tiny_artifacts.data.y_test)
        # Fresh evaluation on the same test images reproduces the stored accuracy.
        assert metrics["accuracy"] == pytest.approx(loaded[name].metrics["accuracy"], abs=1e-9)
        assert metrics["params"] > 0 and metrics["latency_single_ms"] > 0
        assert np.array(metrics["confusion"]).sum() == metrics["n"]


def test_evaluate_bad_data_path_fails_cleanly(tiny_artifacts, tmp_path):
    proc = run_cli("evaluate", "--artifacts", str(tiny_artifacts.directory),
                   "--data", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------

def test_bench_writes_results_and_refreshes_only_the_readme_block(tiny_artifacts, tmp_path):
    data_dir = write_idx_folder(tmp_path / "data", tiny_artifacts.data)
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n## Results\n<!-- bench:start -->\nold\n<!-- bench:end -->\n"
                      "## After\nkept\n")
    out = tmp_path / "RESULTS.md"
    proc = run_cli("bench", "--artifacts", str(tiny_artifacts.directory), "--data", str(data_dir),
                   "--handwriting", str(tmp_path / "no-dev-set"), "--out", str(out),
                   "--readme", str(readme))
    assert proc.returncode == 0, proc.stderr
    table = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert table[0].startswith("| model | test accuracy | with its views |")
    loaded = load_models(tiny_artifacts.directory)
    for name, row in zip(NAMES, table[1:]):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == name
        # The plain column is the stored test accuracy; the views column is a percentage too.
        assert cells[1] == f"{loaded[name].metrics['accuracy']:.2%}"
        assert 0 <= float(cells[2].rstrip("%")) <= 100
    assert "handwriting set not found" in out.read_text()
    text = readme.read_text()
    assert "old" not in text and "### MNIST test set" in text and text.endswith("## After\nkept\n")


# ---------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------

def test_train_writes_complete_artifacts(tmp_path):
    # The shipped configs hold out 5,000 validation images, so a few hundred more train.
    data = make_dataset(n_train=5200, n_test=250, seed=21)
    data_dir = write_idx_folder(tmp_path / "data", data, gz=False, spelling="dot")
    out = tmp_path / "artifacts"
    proc = run_cli("train", "--models", ",".join(NAMES), "--epochs", "1",
                   "--data", str(data_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]

    expected = {MANIFEST, "gallery.npz", "numpy.npz", "lenet5.keras"} | {
        f"{n}.{kind}.json" for n in NAMES for kind in ("metrics", "history")} | {
        f"{n}.map.npz" for n in NAMES} | {"digits.map.npz"}
    assert {p.name for p in out.iterdir()} == expected
    manifest = read_manifest(out)
    assert set(manifest["files"]) == expected - {MANIFEST}
    for name, digest in manifest["files"].items():
        assert sha256(out / name) == digest, name
    assert list(manifest["models"]) == NAMES
    assert manifest["data_source"] == str(data_dir) and "--epochs 1" in manifest["command"]
    assert all(manifest["models"][n]["command"] == manifest["command"] for n in NAMES)

    for name in NAMES:
        metrics = json.loads((out / f"{name}.metrics.json").read_text())
        history = json.loads((out / f"{name}.history.json").read_text())
        assert metrics["n"] == 250 and metrics["train_seconds"] > 0
        assert len(history["epochs"]) == 1 and manifest["models"][name]["epochs"] == 1

    gallery = load_gallery(out)
    assert sorted(gallery.preds) == sorted(NAMES)
    np.testing.assert_array_equal(gallery.images, data.x_test[gallery.index])
    np.testing.assert_array_equal(gallery.labels, data.y_test[gallery.index])
    assert gallery.sample.sum() == 200
    assert list(load_models(out)) == NAMES  # what was written loads and verifies


def test_train_seed_draws_the_same_recipe_again(tmp_path):
    data = make_dataset(n_train=5200, n_test=250, seed=21)
    data_dir = write_idx_folder(tmp_path / "data", data, gz=False, spelling="dot")
    outs = {}
    for seed in ("0", "3", None):
        out = outs[seed] = tmp_path / f"seed-{seed}"
        proc = run_cli("train", "--models", "numpy", "--epochs", "1", "--data", str(data_dir),
                       "--out", str(out), "--writers", "", *(("--seed", seed) if seed else ()))
        assert proc.returncode == 0, proc.stderr[-3000:]
    seeds = {k: read_manifest(o)["models"]["numpy"]["train_config"]["seed"] for k, o in outs.items()}
    assert seeds == {"0": 0, "3": 3, None: 0}
    weights = {k: np.load(o / "numpy.npz", allow_pickle=False) for k, o in outs.items()}
    first = sorted(weights["0"].files)[0]
    np.testing.assert_array_equal(weights["0"][first], weights[None][first])  # 0: the default
    assert not np.array_equal(weights["0"][first], weights["3"][first])


def test_predict_preprocesses_a_single_digit_once(tiny_artifacts, tmp_path, monkeypatch,
                                                  capsys):
    """One ``read_digits`` call: its one reading is the whole-image answer; a row of
    digits is also read whole, which needs the image preprocessed once more."""
    from mnist_core import cli
    from mnist_core.reading import inference

    seen = []

    def counting(fn):
        def wrapper(image, *args, **kwargs):
            seen.append((fn.__name__, image.shape[:2]))
            return fn(image, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(inference, "preprocess", counting(inference.preprocess))
    monkeypatch.setattr(inference, "segment", counting(inference.segment))
    one, row = draw_digit(3), np.hstack([draw_digit(1), draw_digit(7)])
    cv2.imwrite(str(tmp_path / "one.png"), one)
    cv2.imwrite(str(tmp_path / "row.png"), row)
    assert cli.main(["predict", "--json", "--artifacts", str(tiny_artifacts.directory),
                     str(tmp_path / "one.png"), str(tmp_path / "row.png")]) == 0
    single, several = json_lines(capsys.readouterr().out)
    assert_prediction(single, NAMES)
    assert "sequence" not in single and "digits" not in single
    assert_prediction(several, NAMES)
    assert len(several["digits"]) == 2 and all(len(s) == 2 for s in several["sequence"].values())
    assert seen == [("segment", one.shape), ("segment", row.shape), ("preprocess", row.shape)]


def test_predict_json_says_when_an_image_does_not_look_like_a_digit(tmp_path, capsys):
    """The not-a-digit verdict is the app's (``inference.read_row``, the shipped maps'
    far signal included): a photo of noise is flagged, with its reasons; an MNIST test
    digit, scanned as dark ink on white, is not; a row reports it for every digit."""
    from conftest import SHIPPED_ARTIFACTS

    from mnist_core import cli

    from mnist_core.reading import novelty

    digit = load_gallery(SHIPPED_ARTIFACTS).images[0]          # (28, 28) uint8, white on black
    scan = 255 - cv2.resize(digit, (280, 280), interpolation=cv2.INTER_LINEAR)
    noise = novelty.non_digits(1, seed=7, kinds=("noise",))[0][1]
    cv2.imwrite(str(tmp_path / "digit.png"), scan)
    cv2.imwrite(str(tmp_path / "noise.png"), noise)
    cv2.imwrite(str(tmp_path / "row.png"), np.hstack([draw_digit(1), draw_digit(7)]))
    assert cli.main(["predict", "--json", "--artifacts", str(SHIPPED_ARTIFACTS),
                     *(str(tmp_path / n) for n in ("digit.png", "noise.png", "row.png"))]) == 0
    real, noisy, row = json_lines(capsys.readouterr().out)
    assert real["not_a_digit"] is False and real["reasons"] == []
    assert noisy["not_a_digit"] is True and noisy["reasons"]
    assert set(noisy["reasons"]) <= set(novelty.REASONS)
    assert "digits" not in noisy                 # noise is read whole, never split
    assert {"not_a_digit", "reasons"} <= set(row) and len(row["digits"]) == 2
    assert all(d["not_a_digit"] in (True, False) and isinstance(d["reasons"], list)
               for d in row["digits"])

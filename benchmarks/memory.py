"""The server's memory with every page visited, in headless Chromium; writes benchmarks/MEMORY.md.

Starts ``streamlit run app.py`` and visits every page as a user would (Draw, Upload,
Compare models, Confidence, Training curves, Model maps, Stress test, Adversarial digits,
the three class pages without a class, a 28,000-row Kaggle submission, Look inside with
each model and three sessions at once, short Train live runs); after each step it
reads the RSS of the server and of its children (a training worker), and their peaks
while the step ran (sampled every 0.1 s). ``--label both`` then visits every page that
follows the dataset choice again with clothing chosen (``?data=fashion``: the clothing
models load on first use beside the digits'), a garment photo on Upload included.
Runs are kept in ``benchmarks/memory.json``
under ``--label``; ``--options`` measures the alternatives, each in a fresh process;
``--train-worker`` runs Train live's worker on each engine (peak memory, time, accuracy).
The commands are in :data:`COMMAND`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import harness as h
from kaggle_speed import KAGGLE_ROWS, kaggle_zip

REPO = h.REPO
RESULTS = REPO / "benchmarks" / "memory.json"
REPORT = REPO / "benchmarks" / "MEMORY.md"
BUDGET_MB = 700
LOAD_TIMEOUT = 300_000   # ms
TRAIN_TIMEOUT = 600_000  # ms


class Sampler:
    """Samples the tree's RSS every ``period`` seconds in a thread; ``peak()`` since the
    last ``reset()``."""

    def __init__(self, pid: int, period: float = 0.1):
        self.pid, self.period = pid, period
        self._peak_server = self._peak_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            server, kids = h.tree_rss_mb(self.pid)
            self._peak_server = max(self._peak_server, server)
            self._peak_total = max(self._peak_total, server + kids)
            time.sleep(self.period)

    def reset(self):
        self._peak_server = self._peak_total = 0.0

    def peak(self) -> tuple[float, float]:
        return self._peak_server, self._peak_total

    def close(self):
        self._stop.set()
        self._thread.join()


def paper_png(digit28) -> bytes:
    """A 28x28 digit as dark ink on light paper, upscaled, as PNG: like a photo or scan."""
    import cv2
    import numpy as np

    big = cv2.resize(digit28, (240, 240), interpolation=cv2.INTER_CUBIC)
    page = np.full((300, 300), 235, np.uint8)
    page[30:270, 30:270] = 235 - (big.astype(np.int32) * 205 // 255)
    return cv2.imencode(".png", np.repeat(page[..., None], 3, axis=2))[1].tobytes()


def set_slider_to_min(page, label: str) -> None:
    thumb = page.locator(f'input[type=range][aria-label="{label}"]')
    thumb.focus()
    thumb.press("Home")


# The pages that follow the dataset choice (issue 23), each with the text that says it is
# ready: visited with digits, then again with clothing chosen.
DATASET_PAGES = (("Compare_models", "Compare models", "Confusion matrix"),
                 ("Confidence", "Confidence", "Honest confidence"),
                 ("Training_curves", "Training curves", "Training curves"),
                 ("Model_maps", "Model maps", "Hover a dot"),
                 ("Stress_test", "Stress test", "Sweep one change"),
                 ("Adversarial_digits", "Adversarial digits", "Made against"))
# The class pages, as a visitor without a class code sees them.
CLASS_PAGES = (("Collect", "Collect", "Type your class code"),
               ("Class_dashboard", "Class dashboard", "Type your class's code"),
               ("Teach", "Teach", "Type your class code"))


def upload(url: str, page, record, png: Path, query: str, what: str) -> None:
    """Upload ``png`` on the Upload page (``query`` appended to its address);
    ``record("Upload", what, t0, page)`` once the answer has settled."""
    from playwright.sync_api import expect

    t0 = time.perf_counter()
    page.goto(f"{url}/Upload{query}")
    chooser = page.locator("input[type=file]")
    expect(chooser).to_be_attached(timeout=LOAD_TIMEOUT)
    chooser.set_input_files([png])
    expect(page.get_by_text("what the models see")).to_be_visible()
    h.settle(page)
    record("Upload", what, t0, page)


def visit_pages(url: str, page, record, pages, query: str = "", what: str = "rendered") -> None:
    """Open each of ``pages`` (address, name, the text that says it is ready) with
    ``query`` appended; ``record(name, what, t0, page)`` once each has settled."""
    from playwright.sync_api import expect

    for path, name, ready in pages:
        t0 = time.perf_counter()
        page.goto(f"{url}/{path}{query}")
        expect(page.get_by_text(ready).first).to_be_visible(timeout=LOAD_TIMEOUT)
        h.settle(page)
        record(name, what, t0, page)


def visit_clothing(url: str, page, record, tmp: Path, fashion: Path) -> None:
    """Every page that follows the dataset choice, with clothing chosen (the clothing
    models load on the first), Look inside with each clothing model, and a garment photo
    on Upload; ``record(page, what, t0, page)`` after each step."""
    import cv2
    import numpy as np
    from playwright.sync_api import expect

    from mnist_core.artifacts.files import load_gallery, read_manifest
    from mnist_core.artifacts.registry import FASHION_REGISTRY

    visit_pages(url, page, record, DATASET_PAGES, "?data=fashion", "clothing: rendered")
    titles = [FASHION_REGISTRY[n].title for n in FASHION_REGISTRY
              if n in read_manifest(fashion)["models"]]
    t0 = time.perf_counter()
    page.goto(f"{url}/Look_inside?data=fashion")
    expect(page.get_by_text("Occlusion").first).to_be_visible(timeout=LOAD_TIMEOUT)
    h.settle(page)
    record("Look inside", f"clothing: first render ({titles[0]})", t0, page)
    for title in titles[1:]:
        t0 = time.perf_counter()
        page.get_by_role("radio", name=title, exact=True).click()
        expect(page.get_by_text(f"{title} reads")).to_be_visible(timeout=LOAD_TIMEOUT)
        h.settle(page)
        record("Look inside", f"clothing: {title} picked", t0, page)
    # A garment photo: a shipped test image, dark on a light plain background, upscaled.
    garment = load_gallery(fashion).images[0]
    big = cv2.resize(garment, (336, 336), interpolation=cv2.INTER_CUBIC).astype(np.int32)
    photo = np.full((456, 456), 235, np.int32)
    photo[60:396, 60:396] = 235 - big * 235 // 255
    png = tmp / "garment.png"
    png.write_bytes(cv2.imencode(".png", photo.astype(np.uint8))[1].tobytes())
    upload(url, page, record, png, "?data=fashion", "clothing: one garment photo")
    t0 = time.perf_counter()
    page.goto(f"{url}/Compare_models?data=digits")
    expect(page.get_by_text("Confusion matrix").first).to_be_visible(timeout=LOAD_TIMEOUT)
    h.settle(page)
    record("Compare models", "digits again (both datasets' models loaded)", t0, page)


def visit(url: str, pid: int, artifacts: Path, tmp: Path, steps: list[dict],
          train: tuple[str, ...], clothing: bool = False) -> None:
    from playwright.sync_api import expect, sync_playwright

    from mnist_core.artifacts.files import load_gallery, read_manifest
    from mnist_core.artifacts.registry import REGISTRY

    titles = {n: REGISTRY[n].title for n in REGISTRY if n in read_manifest(artifacts)["models"]}
    gallery = load_gallery(artifacts)
    digit = gallery.images[0]
    png = tmp / "digit.png"
    png.write_bytes(paper_png(digit))
    # A Kaggle-size file, zipped as the page asks (its 51 MB are over the upload limit):
    # 28,000 rows, the gallery's digits tiled. Predicting it loads ONNX Runtime.
    csv = kaggle_zip(tmp / "test.csv.zip", gallery.images, KAGGLE_ROWS)
    sampler = Sampler(pid)

    def record(page_name: str, what: str, t0: float, page=None) -> None:
        seconds = time.perf_counter() - t0
        if page is not None:
            h.no_exception(page, what)
        server, kids = h.tree_rss_mb(pid)
        peak_server, peak_total = sampler.peak()
        steps.append(dict(page=page_name, what=what, seconds=round(seconds, 2),
                          server_mb=round(server), children_mb=round(kids),
                          peak_server_mb=round(max(peak_server, server)),
                          peak_total_mb=round(max(peak_total, server + kids))))
        print(f"{page_name:16} {what:44} {seconds:6.1f} s  server {server:5.0f} MB  "
              f"children {kids:4.0f} MB  peak {max(peak_total, server + kids):5.0f} MB",
              flush=True)
        sampler.reset()

    try:
        record("(server)", "started, no page opened", time.perf_counter())
        with sync_playwright() as p:
            browser = h.launch_chromium(p)
            context = browser.new_context(viewport={"width": 1280, "height": 2400})
            page = context.new_page()
            expect.set_options(timeout=120_000)

            t0 = time.perf_counter()
            page.goto(url)
            canvas = page.locator("canvas.upper-canvas")
            expect(canvas).to_be_visible(timeout=LOAD_TIMEOUT)
            h.draw_stroke(page, canvas, h.SEVEN, steps=20)
            expect(page.get_by_text("From drawing to model input")).to_be_visible()
            h.settle(page)
            record("Draw", "a drawn 7 read by every model", t0, page)

            upload(url, page, record, png, "", "one photo-like PNG")

            visit_pages(url, page, record, DATASET_PAGES + CLASS_PAGES)

            t0 = time.perf_counter()
            page.goto(f"{url}/Kaggle")
            chooser = page.locator("input[type=file]")
            expect(chooser).to_be_attached(timeout=LOAD_TIMEOUT)
            chooser.set_input_files(csv)
            expect(page.get_by_text(f"Read {KAGGLE_ROWS:,} digits")).to_be_visible()
            page.get_by_role("button", name=f"Predict {KAGGLE_ROWS:,} digits").click()
            expect(page.get_by_role("button", name="Download submission.csv")).to_be_visible()
            record("Kaggle", f"{KAGGLE_ROWS:,} digits predicted (a zipped test.csv)", t0, page)

            t0 = time.perf_counter()
            page.goto(f"{url}/Look_inside")
            expect(page.get_by_text("Occlusion").first).to_be_visible(timeout=LOAD_TIMEOUT)
            h.settle(page)
            record("Look inside", f"first render ({next(iter(titles.values()))})", t0, page)
            for name, title in list(titles.items())[1:]:
                t0 = time.perf_counter()
                page.get_by_role("radio", name=title, exact=True).click()
                expect(page.get_by_text(f"{title} reads")).to_be_visible(timeout=LOAD_TIMEOUT)
                h.settle(page)
                record("Look inside", f"{title} picked", t0, page)

            # Three sessions at once (the 17-19 s measurement).
            others = [browser.new_context(viewport={"width": 1280, "height": 2400})
                      for _ in range(3)]
            tabs = [c.new_page() for c in others]
            t0 = time.perf_counter()
            for tab in tabs:
                tab.goto(f"{url}/Look_inside", wait_until="commit")
            for tab in tabs:
                expect(tab.get_by_text("Occlusion").first).to_be_visible(timeout=LOAD_TIMEOUT)
                h.settle(tab)
            record("Look inside", "three new sessions at once", t0, tabs[-1])
            for c in others:
                c.close()

            page.goto(f"{url}/Train_live")
            expect(page.get_by_text("Train a model live")).to_be_visible(timeout=LOAD_TIMEOUT)
            for name in train:
                title = REGISTRY[name].title
                t0 = time.perf_counter()
                page.get_by_role("radio", name=title, exact=True).click()
                h.settle(page)
                set_slider_to_min(page, "Training images")
                set_slider_to_min(page, "Epochs")
                h.settle(page)
                page.get_by_role("button", name="Train", exact=True).click()
                expect(page.get_by_text(f"Your {title} against the shipped one")).to_be_visible(
                    timeout=TRAIN_TIMEOUT)
                h.settle(page)
                record("Train live", f"{title}: 1,000 images, 1 epoch, scored", t0, page)

            if clothing:
                visit_clothing(url, page, record, tmp, artifacts / "fashion")

            t0 = time.perf_counter()
            time.sleep(10)
            record("(idle)", "10 s after the last page", t0)
            browser.close()
    finally:
        sampler.close()


def _mnist_data() -> str:
    if not os.environ.get("MNIST_DATA"):
        raise SystemExit("set MNIST_DATA to a local MNIST copy: Train live needs it")
    return os.environ["MNIST_DATA"]


def measure(artifacts: Path, train: tuple[str, ...], clothing: bool = False) -> dict:
    from mnist_core.artifacts.files import read_manifest
    _mnist_data()
    steps: list[dict] = []
    t0 = time.perf_counter()
    proc, url = h.start_server(artifacts)
    started = time.perf_counter() - t0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            visit(url, proc.pid, artifacts, Path(tmp), steps, train, clothing)
    finally:
        h.stop_server(proc)
    return {"when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            "commit": h.git_commit(),
            "models": list(read_manifest(artifacts)["models"]),
            "server_start_s": round(started, 1), "steps": steps}


# Reads /proc itself, not through the harness: it runs in `--python`'s interpreter, which
# may have neither psutil nor this checkout, and the harness's imports would add to its RSS.
_PROBE = r"""
import json, os, sys, time
t0 = time.perf_counter()
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024
def rss():
    return status('VmRSS')
def install_mb(*packages):
    import importlib.util
    total = 0
    for name in packages:
        spec = importlib.util.find_spec(name)
        for root in spec.submodule_search_locations or []:
            for folder, _, files in os.walk(root):
                total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total / 2**20
out = {'python_mb': rss()}
try:  # BLAS at one thread, as the server holds it (mnist_core.tuning.limit_blas_threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1, user_api='blas')
except ImportError:
    pass
exec(sys.argv[1])
out['seconds'] = time.perf_counter() - t0
out['rss_mb'] = rss()
out['peak_mb'] = status('VmHWM')
print(json.dumps(out))
"""

_MODELS_AND_IMAGE = """
import numpy as np
x = np.random.default_rng(0).random((28, 28)).astype(np.float32)
names = ('dense', 'cnn', 'lenet5')
"""

_TRAIN = """
os.environ['KERAS_BACKEND'] = '@BACKEND@'
import numpy as np, keras
from mnist_core.datasets.data import load_dataset, to_float
from mnist_core.models.keras_tf import build
from mnist_core.artifacts.registry import REGISTRY
data = load_dataset(os.environ['MNIST_DATA'])
x = to_float(data.x_train[:1000])[..., None]
y = np.eye(10, dtype=np.float32)[data.y_train[:1000]]
net = build(REGISTRY['cnn'].live_arch)
net.compile(optimizer=keras.optimizers.AdamW(3e-3), loss='categorical_crossentropy')
net.fit(x, y, batch_size=128, epochs=1, verbose=0)
net.predict(to_float(data.x_test)[..., None], verbose=0, batch_size=512)
out['tensorflow_loaded'] = 'tensorflow' in sys.modules
"""

OPTION_CODE = {
    # The app as it is now: the NumPy evaluators and gradients.
    "numpy": _MODELS_AND_IMAGE + """
from mnist_core.artifacts.files import load_models
models = load_models('artifacts')
out['loaded_mb'] = rss()
for m in models.values():  # warm-up
    m.input_gradient(x, 3)
t1 = time.perf_counter()
for m in models.values():
    m.input_gradient(x, 3)
    (m.feature_maps(x) if m.family == 'conv' else m.hidden_activations(x))
out['views_ms'] = (time.perf_counter() - t1) * 1000
""",
    # What Look inside did before: the real Keras networks, GradientTape.
    "tensorflow": _MODELS_AND_IMAGE + """
import tensorflow as tf, keras
out['import_mb'] = rss()
nets = [keras.models.load_model(f'artifacts/{n}.keras', compile=False) for n in names]
out['loaded_mb'] = rss()
def grads():
    for net in nets:
        t = tf.constant(x[None, ..., None])
        with tf.GradientTape() as tape:
            tape.watch(t)
            lp = tf.math.log(net(t, training=False)[0, 3])
        tape.gradient(lp, t)
grads()
t1 = time.perf_counter(); grads(); out['grads_ms'] = (time.perf_counter() - t1) * 1000
out['install_mb'] = install_mb('tensorflow')
""",
    # Keras 3 on the JAX backend: the same .keras files, jax.grad for the saliency.
    "keras-jax": _MODELS_AND_IMAGE + """
import os
os.environ['KERAS_BACKEND'] = 'jax'
import jax, jax.numpy as jnp, keras
out['import_mb'] = rss()
nets = [keras.models.load_model(f'artifacts/{n}.keras', compile=False) for n in names]
out['loaded_mb'] = rss()
fns = [jax.jit(jax.grad(lambda im, net=net: jnp.log(net(im, training=False)[0, 3])))
       for net in nets]
def grads():
    for f in fns:
        f(jnp.asarray(x[None, ..., None])).block_until_ready()
grads()
t1 = time.perf_counter(); grads(); out['grads_ms'] = (time.perf_counter() - t1) * 1000
out['install_mb'] = install_mb('jax', 'jaxlib', 'scipy')
""",
    # A kept inference runtime (it has no input gradients: saliency would still need
    # another path).
    "onnxruntime": "import onnxruntime; out['import_mb'] = rss(); "
                   "out['install_mb'] = install_mb('onnxruntime')",
    # Train live's worker: its start-up against training in the server's process.
    "worker": """
import os
from mnist_core.training.augment import NONE
from mnist_core.datasets.data import load_dataset
from mnist_core.package import train_and_package
from mnist_core.worker import train_in_worker
from mnist_core.artifacts.registry import REGISTRY
from mnist_core.training.config import TrainConfig
data = load_dataset(os.environ['MNIST_DATA'])
cfg = TrainConfig(epochs=1, n_train=1000, augment=NONE)
for name in ('numpy', 'dense'):
    arch = REGISTRY[name].live_arch
    if name == 'numpy':
        t1 = time.perf_counter()
        train_and_package([name], data, train_cfg=cfg, arch=arch)
        out[f'{name}_in_process_s'] = time.perf_counter() - t1
        out['in_process_rss_mb'] = rss()
    first = []
    t1 = time.perf_counter()
    train_in_worker(name, data, train_cfg=cfg, arch=arch,
                    callback=lambda e, i: first.append(time.perf_counter() - t1))
    out[f'{name}_worker_s'] = time.perf_counter() - t1
    out[f'{name}_worker_first_batch_s'] = first[0]
""",
    # Training a Keras CNN (Train live's, 1,000 images, 1 epoch) on each backend: the
    # worker's peak.
    "train-tensorflow": _TRAIN.replace("@BACKEND@", "tensorflow"),
    "train-jax": _TRAIN.replace("@BACKEND@", "jax"),
}


def options(python: str, names: list[str]) -> dict:
    """Each option in a fresh process of ``python`` (one with the option's packages)."""
    found = {}
    for name in names:
        try:
            out = h.run_json([python, "-c", _PROBE, OPTION_CODE[name]],
                             {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)})
        except RuntimeError as exc:
            print(f"{name}: failed: {str(exc).strip().splitlines()[-1]}", flush=True)
            continue
        found[name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
        print(f"{name}: {found[name]}", flush=True)
    return found


def train_worker(name: str, images: int, engine: str, data, epochs: int = 3) -> dict:
    """One Train live run of registry model ``name`` through the real worker
    (:func:`mnist_core.worker.train_in_worker`) at the page's default settings with
    ``images`` training images, trained by ``engine``: the worker's peak RSS (``VmHWM``,
    which the worker reads itself as it finishes), the call's wall time (worker start,
    training, scoring, the file sent back), the training's and its first epoch's seconds,
    the accuracies, and which of tensorflow and keras the worker imported."""
    from dataclasses import replace

    from mnist_core import worker
    from mnist_core.training.augment import NONE
    from mnist_core.artifacts.registry import REGISTRY
    from mnist_core.training.config import TrainConfig

    # Train live's widgets as the page opens (app_pages/train_live.py).
    cfg = TrainConfig(epochs=epochs, batch_size=128, lr=3e-3, n_train=10_000, augment=NONE)
    payloads = []
    real = worker._run_worker

    def spy(request, on_event, stop):
        out = real(request, on_event, stop)
        payloads.append(out)
        return out

    worker._run_worker = spy
    try:
        t0 = time.perf_counter()
        trained = worker.train_in_worker(name, data, train_cfg=replace(cfg, n_train=images),
                                         arch=REGISTRY[name].live_arch, engine=engine)
        wall = time.perf_counter() - t0
    finally:
        worker._run_worker = real
    (out,) = payloads
    return {"model": name, "images": images, "engine": engine, "epochs": cfg.epochs,
            "peak_mb": round(out["peak_rss_kb"] / 1024), "wall_s": round(wall, 1),
            "train_s": round(trained.seconds, 1),
            "epoch1_s": round(trained.history[0].seconds, 1),
            "worker_cpu_s": round(out["cpu_seconds"], 1),
            "val_accuracy": trained.history[-1].val_accuracy,
            "test_accuracy": trained.metrics["accuracy"], "imported": out["imported"],
            "load": round(os.getloadavg()[0], 1),
            "when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            "commit": h.git_commit()}


def train_workers(models: list[str], images: list[int], engines: list[str],
                  epochs: int = 3) -> dict:
    from mnist_core.worker import DatasetSource
    data = DatasetSource(str(_mnist_data()))  # as Train live: the worker reads MNIST itself
    found = {}
    for name in models:
        for n in images:
            for engine in engines:
                row = train_worker(name, n, engine, data, epochs)
                found[f"{name}/{n}/{epochs}/{engine}"] = row
                print(row, flush=True)
    return found


def _train_worker_section(rows: dict, after: dict | None = None) -> str:
    lines = ["| model | images | epochs | engine | commit | worker peak MB | wall s | training s "
             "| first epoch s | worker CPU s | val accuracy | test accuracy | worker imported "
             "| load average |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ordered = sorted(rows.items(), key=lambda kv: (
        kv[1]["model"] != "dense", -kv[1]["epochs"], kv[1]["images"],
        kv[1]["engine"] != "tensorflow", "@" not in kv[0]))
    for _, r in ordered:
        lines.append(f"| {r['model']} | {r['images']:,} | {r['epochs']} | {r['engine']} | "
                     f"{r['commit']} | {r['peak_mb']} | "
                     f"{r['wall_s']:.1f} | {r['train_s']:.1f} | {r['epoch1_s']:.1f} | "
                     f"{r['worker_cpu_s']:.1f} | "
                     f"{r['val_accuracy']:.2%} | {r['test_accuracy']:.2%} | "
                     f"{', '.join(r['imported']) or 'neither'} | {r['load']} |")
    when = sorted(r["when"] for r in rows.values())
    commits = sorted({r["commit"] for r in rows.values()})
    # Rows kept under "key@commit" are an earlier tree's, for comparison: not today's worker.
    current = [r for key, r in rows.items() if "@" not in key]
    numpy_peak = max((r["peak_mb"] for r in current if r["engine"] == "numpy"), default=0)
    tf_peak = max((r["peak_mb"] for r in current if r["engine"] == "tensorflow"), default=0)
    server = max((st["peak_server_mb"] for st in (after or {}).get("steps", [])), default=0)
    worst = server + numpy_peak
    verdict = ("", f"The worst case the page allows, the highest server RSS of the latest "
                   f"walk ({server} MB, every page visited, {after['when']}) plus the "
                   f"largest NumPy worker here ({numpy_peak} MB), is {worst} MB, "
                   f"{'under' if worst <= BUDGET_MB else 'over'} the {BUDGET_MB} MB "
                   f"budget; with TensorFlow's worker it would be {server + tf_peak} MB."
               ) if server else ()
    return "\n".join([
        "## Train live without TensorFlow", "",
        "Train live and Teach now train the Keras architectures in NumPy "
        "(the engine, `mnist_core/engine/`, through the `numpy` engine of "
        "`worker.train_in_worker`): the same layers, initialisation, training-mode "
        "BatchNorm and Dropout, smoothed cross-entropy, Keras's AdamW and cosine schedule, "
        "saved as a real `.keras` file; neither the server nor the worker imports "
        "TensorFlow. `python -m mnist_core train` (the shipped files) still trains with "
        "Keras on TensorFlow. Each row is one run through the real worker at Train live's "
        "default settings (3 epochs, batch 128, learning rate 3e-3, no augmentation), "
        "10,000 images (the page's default) or 20,000 (its maximum), and short CNN "
        "runs of one epoch on 1,000 and 5,000 images; `tensorflow` is the worker as it was. Worker peak: its `VmHWM`; wall: the whole call (worker "
        "start, training, scoring on the 10,000 test digits, the file sent back); first "
        "epoch: its own seconds (TensorFlow's include tracing), with the validation "
        "split's prediction; worker CPU: the worker process's user + system seconds, all "
        "threads (imports included). Times are wall-clock on this 2-core machine shared "
        "with other work (the load average as each run ended is in the last column). "
        "Rows of the same run on two commits, one after the other: before and after a "
        "change (89371ba -> e9d96d4: the worker scores and calibrates in NumPy instead of "
        "ONNX Runtime, and is not sent real writers' images a training does not mix in).",
        "",
        *lines, *verdict, "",
        f"Measured {when[0]} to {when[-1]} (commits {', '.join(commits)}).", ""])


def _table(run: dict) -> list[str]:
    lines = h.table(["page", "step", "s", "server RSS MB", "children MB", "peak, server MB",
                     "peak, server + children MB"],
                    [(s["page"], s["what"], f"{s['seconds']:.1f}", s["server_mb"],
                      s["children_mb"], s["peak_server_mb"], s["peak_total_mb"])
                     for s in run["steps"]])
    worst = max(s["peak_server_mb"] for s in run["steps"])
    total = max(s["peak_total_mb"] for s in run["steps"])
    last = run["steps"][-1]
    lines += ["", f"Highest server RSS: **{worst} MB**; highest server + children: "
                  f"**{total} MB**; at the end, idle: **{last['server_mb'] + last['children_mb']} MB** "
                  f"(budget {BUDGET_MB} MB). Server start {run['server_start_s']} s; "
                  f"commit {run['commit']}, {run['when']}."]
    return lines


COMMAND = """export MNIST_DATA=../shared/data/mnist
.venv/bin/python benchmarks/memory.py --label before   # once, on the code before the change
.venv/bin/python benchmarks/memory.py --label after
.venv/bin/python benchmarks/memory.py --label both    # then every page again on clothing
.venv/bin/python benchmarks/memory.py --options numpy tensorflow worker train-tensorflow
# the other options in a venv that has them (pip install jax onnxruntime keras==3.15.1
# h5py==3.14.0 numpy==2.4.6 pillow==13.0.0 opencv-python-headless==5.0.0.93 threadpoolctl):
.venv/bin/python benchmarks/memory.py --options keras-jax onnxruntime train-jax --python VENV/bin/python
.venv/bin/python benchmarks/memory.py --train-worker   # dense, cnn x 10,000, 20,000 x tensorflow, numpy
.venv/bin/python benchmarks/memory.py --train-worker --models cnn --images 1000 5000 --epochs 1"""


def _options_section(results: dict) -> str:
    o = results["options"]

    def get(name: str, key: str, fmt: str = "{:.0f}") -> str:
        value = o.get(name, {}).get(key)
        return "n/m" if value is None else fmt.format(value)

    steps = results.get("after", {}).get("steps", [])
    worker = {s["what"].split(":")[0]: s["peak_total_mb"] - s["server_mb"]
              for s in steps if s["page"] == "Train live"}
    server = max((s["peak_server_mb"] for s in steps), default=None)
    before = results.get("before", {}).get("steps", [])
    kept = next((b["server_mb"] - a["server_mb"] for a, b in zip(before, before[1:])
                 if b["what"].startswith("NumPy MLP")), None)
    overhead = (o["worker"]["numpy_worker_s"] - o["worker"]["numpy_in_process_s"]
                if "worker" in o else float("nan"))
    return f"""## The options, measured

Each measured in a fresh Python process (`--options`); RSS is `VmRSS` after the step,
"install" the size of the packages on disk. "n/m": not measured.

| option | RSS | latency | install | verdict |
|---|---|---|---|---|
| **NumPy gradients and layer outputs** (`mnist_core/engine/`): Look inside's views of every model in NumPy | {get('numpy', 'loaded_mb')} MB with all 4 models loaded (the process, not added to the server) | every view of all 4 models (4 input gradients, feature maps or activations): {get('numpy', 'views_ms', '{:.1f}')} ms | 0 (NumPy, h5py: already there) | **chosen for Look inside**: exact (the tests hold it to GradientTape within 1e-4 of the largest value), no start-up, no new dependency |
| TensorFlow in the server (before) | {get('tensorflow', 'import_mb')} MB after `import tensorflow, keras`, {get('tensorflow', 'loaded_mb')} MB with the 3 Keras networks | 3 GradientTape gradients: {get('tensorflow', 'grads_ms')} ms, after {get('tensorflow', 'seconds', '{:.1f}')} s of import and loading | {get('tensorflow', 'install_mb')} MB (`tensorflow/`) | what pushed the server to 800 MB-1.2 GB; no longer imported by the app |
| onnxruntime kept for inference | {get('onnxruntime', 'import_mb')} MB after import | n/m (inference only) | {get('onnxruntime', 'install_mb')} MB | rejected for the server's drawings and gradients: predictions already run in NumPy, and ONNX Runtime has no input gradients, so saliency would still need TensorFlow or the NumPy backward pass; later kept for batches of 1,024+ images only (Kaggle, evaluate, bench: mnist_core/engine/onnx_graph.py, KAGGLE_SPEED.md), loaded on the first such batch |
| Keras 3 on the JAX backend | {get('keras-jax', 'import_mb')} MB after import, {get('keras-jax', 'loaded_mb')} MB with the 3 networks, {get('keras-jax', 'rss_mb')} MB after compiling their gradients | 3 `jax.grad` gradients: {get('keras-jax', 'grads_ms', '{:.1f}')} ms, after {get('keras-jax', 'seconds', '{:.1f}')} s of import, loading and compiling | {get('keras-jax', 'install_mb')} MB (jax, jaxlib, scipy) | rejected for the server (still ~{get('keras-jax', 'loaded_mb')} MB); a candidate for the training worker (below) |
| **Training in a worker process** (`worker.train_in_worker`) | server: at most {server} MB on every page (the "after" table); the worker adds, at its peak: {', '.join(f'{k} {v} MB' for k, v in worker.items()) or 'n/m'}, and all of it goes when training ends | first batch after {get('worker', 'numpy_worker_first_batch_s', '{:.1f}')} s (NumPy MLP) and {get('worker', 'dense_worker_first_batch_s', '{:.1f}')} s (Keras dense; 3.4 s while the worker imported TensorFlow); a whole 1,000-image NumPy run {get('worker', 'numpy_worker_s', '{:.2f}')} s in the worker against {get('worker', 'numpy_in_process_s', '{:.2f}')} s in-process | 0 | **chosen for Train live**, for every model: the NumPy MLP too, since its worker costs ~{overhead:.1f} s a training and keeps the training's buffers (the server kept +{kept} MB after one NumPy run before) and its CPU out of the server |
| the training worker on JAX instead of TensorFlow | CNN, 1,000 images, 1 epoch: peak {get('train-jax', 'peak_mb')} MB on JAX against {get('train-tensorflow', 'peak_mb')} MB on TensorFlow | {get('train-jax', 'seconds', '{:.1f}')} s against {get('train-tensorflow', 'seconds', '{:.1f}')} s | {get('keras-jax', 'install_mb')} MB more (TensorFlow stays for the CLI's `fast_predict_fn`) | rejected: still over the budget beside the server |
| **the Keras architectures trained in NumPy** (`mnist_core/engine/`, `mnist_core/training/train.py`) | the worker's peak at Train live's default (10,000 images) and maximum (20,000) below, "Train live without TensorFlow" | the same section | 0 | **chosen for Train live and Teach**: no TensorFlow in any process of the app |

What the numbers say: the server itself stays under the budget on every page, Look inside
and Train live included. A worker that imported TensorFlow put server and worker together
over the budget for the length of a Keras training (TensorFlow's import alone is
{get('tensorflow', 'import_mb')} MB, and a worker on JAX would still peak at
{get('train-jax', 'peak_mb')} MB); the worker now trains the Keras models in NumPy, and the
"after" table's highest server + children is
{max((s['peak_total_mb'] for s in steps), default=0)} MB."""


def write_report(results: dict, command: str) -> None:
    lines = [
        "Written by `benchmarks/memory.py`: a real `streamlit run app.py` server and headless "
        "Chromium visit every page in turn (see the steps below), and after each step the "
        "resident set size of the server process and of its children is read (psutil); "
        "the peaks are sampled every 0.1 s while the step runs. Models: "
        f"{', '.join(next(iter(results.values()))['models'])} (the shipped `artifacts/`). "
        f"Goal: the server under {BUDGET_MB} MB (Streamlit Community Cloud's smallest tier "
        "is about 690 MB). Machine, as this report was written from `memory.json` (each "
        f"table says when it was measured): {h.machine('Streamlit', 'Playwright', 'chromium')}.",
        "",
    ]
    for label in ("before", "after"):
        if label in results:
            lines += [f"## {label.capitalize()}", "", *_table(results[label]), ""]
    if "both" in results:
        lines += ["## Both datasets (issue 23)", "",
                  "Every page as in \"After\", then every page that follows the dataset "
                  "choice again with clothing chosen (`?data=fashion`): the clothing models "
                  "(`artifacts/fashion/`) load on the first of them and stay beside the "
                  "digits' for the rest of the run.", "", *_table(results["both"]), ""]
    if "options" in results:
        lines += _options_section(results), ""
    if "train_worker" in results:
        walks = [results[k] for k in ("after", "both") if k in results]
        latest = max(walks, key=lambda w: w["when"]) if walks else None
        lines += _train_worker_section(results["train_worker"], latest), ""
    lines += ["## Command", "", "```", command, "```"]
    h.write_report(REPORT, "Memory with every page visited", lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    parser.add_argument("--label", default="after", choices=("before", "after", "both"),
                        help="both: every page, then the clothing pages too (issue 23)")
    parser.add_argument("--train", default="numpy,dense,cnn",
                        help="models trained on Train live, comma-separated")
    parser.add_argument("--options", nargs="*", metavar="NAME",
                        help=f"measure options ({', '.join(OPTION_CODE)}; default: all) "
                             "in fresh processes instead of visiting the pages")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite MEMORY.md from memory.json")
    parser.add_argument("--train-worker", action="store_true",
                        help="measure Train live's worker on each engine instead")
    parser.add_argument("--models", nargs="+", default=["dense", "cnn"],
                        help="--train-worker: the models")
    parser.add_argument("--images", nargs="+", type=int, default=[10_000, 20_000],
                        help="--train-worker: training images per run")
    parser.add_argument("--engines", nargs="+", default=["tensorflow", "numpy"],
                        help="--train-worker: the training engines")
    parser.add_argument("--epochs", type=int, default=3, help="--train-worker: epochs")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter the options run in (one with their packages)")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.train_worker:
        results.setdefault("train_worker", {}).update(
            train_workers(args.models, args.images, args.engines, args.epochs))
    elif args.options is not None:
        results.setdefault("options", {}).update(
            options(args.python, args.options or list(OPTION_CODE)))
    elif not args.report:
        h.require_chromium()
        results[args.label] = measure(args.artifacts, tuple(n for n in args.train.split(",") if n),
                                      clothing=args.label == "both")
    if not args.report:
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    write_report(results, COMMAND)
    print(REPORT.read_text())
    return 0

if __name__ == "__main__":
    sys.exit(main())

"""The server's memory with every page visited, in headless Chromium; writes benchmarks/MEMORY.md.

Starts ``streamlit run app.py`` (``tests/app_helpers.start_server``), then visits every page
as a user would: a drawing on Draw, an upload, Compare models, Training curves, Stress test,
a Kaggle submission, Look inside with each model picked in turn, three Look inside sessions
opened at once, and short Train live runs of every live model. After each step it records
the resident set size (``VmRSS`` from /proc) of the server process and of all its children
(a training worker, when there is one), and the peak of both while the step ran (sampled
every 0.1 s).

Results are kept in ``benchmarks/memory.json`` under ``--label`` (``before`` or ``after``
a change), so the report shows both; ``benchmarks/MEMORY.md`` is rewritten from that file
and from ``benchmarks/memory_options.md`` (the comparison of the options, written by hand
from ``--options`` measurements).

Usage::

    MNIST_DATA=../shared/data/mnist .venv/bin/python benchmarks/memory.py --label after
    .venv/bin/python benchmarks/memory.py --options   # RSS, time and size of each option
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import app_helpers as h  # noqa: E402

RESULTS = REPO / "benchmarks" / "memory.json"
OPTIONS = REPO / "benchmarks" / "memory_options.md"
REPORT = REPO / "benchmarks" / "MEMORY.md"
BUDGET_MB = 700
LOAD_TIMEOUT = 300_000   # ms
TRAIN_TIMEOUT = 600_000  # ms


# ---------------------------------------------------------------------------------------
# Memory of a process tree
# ---------------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """``(server MB, children MB)``: VmRSS of ``pid`` and of all its descendants."""
    def rss(p: int) -> float:
        try:
            return h.vm_rss_mb(p)
        except (OSError, RuntimeError):
            return 0.0  # exited meanwhile (or a zombie: no VmRSS)
    todo, kids = _children(pid), 0.0
    while todo:
        p = todo.pop()
        kids += rss(p)
        todo += _children(p)
    return rss(pid), kids


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
            server, kids = tree_rss_mb(self.pid)
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


# ---------------------------------------------------------------------------------------
# The visit
# ---------------------------------------------------------------------------------------

def settle(page) -> None:
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    page.wait_for_function("!document.querySelector('[data-stale=\"true\"]')")
    page.wait_for_function("!document.querySelector('[data-testid=\"stSpinner\"]')")


def no_exception(page, step: str) -> None:
    if page.get_by_test_id("stException").count():
        raise RuntimeError(f"{step}: the page shows an exception:\n"
                           + page.get_by_test_id("stException").first.inner_text())


def set_slider_to_min(page, label: str) -> None:
    thumb = page.locator(f'input[type=range][aria-label="{label}"]')
    thumb.focus()
    thumb.press("Home")


def visit(url: str, pid: int, artifacts: Path, tmp: Path, steps: list[dict],
          train: tuple[str, ...]) -> None:
    from playwright.sync_api import expect, sync_playwright

    from mnist_core.artifacts import load_gallery, read_manifest
    from mnist_core.registry import REGISTRY

    titles = {n: REGISTRY[n].title for n in REGISTRY if n in read_manifest(artifacts)["models"]}
    gallery = load_gallery(artifacts)
    digit = gallery.images[0]
    png = tmp / "digit.png"
    png.write_bytes(h.png_bytes(h.paper_digit(digit)))
    csv = tmp / "test.csv"
    rows = gallery.images[:50].reshape(50, -1).astype(int)
    csv.write_text(",".join(f"pixel{i}" for i in range(784)) + "\n"
                   + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    sampler = Sampler(pid)

    def record(page_name: str, what: str, t0: float, page=None) -> None:
        seconds = time.perf_counter() - t0
        if page is not None:
            no_exception(page, what)
        server, kids = tree_rss_mb(pid)
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
            browser = p.chromium.launch(executable_path=h.chromium_path(), args=h.CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 2400})
            page = context.new_page()
            expect.set_options(timeout=120_000)

            t0 = time.perf_counter()
            page.goto(url)
            canvas = page.locator("canvas.upper-canvas")
            expect(canvas).to_be_visible(timeout=LOAD_TIMEOUT)
            h.draw_stroke(page, canvas, h.SEVEN, steps=20)
            expect(page.get_by_text("From drawing to model input")).to_be_visible()
            settle(page)
            record("Draw", "a drawn 7 read by every model", t0, page)

            t0 = time.perf_counter()
            page.goto(f"{url}/Upload")
            chooser = page.locator("input[type=file]")
            expect(chooser).to_be_attached(timeout=LOAD_TIMEOUT)
            chooser.set_input_files([png])
            expect(page.get_by_text("what the models see")).to_be_visible()
            settle(page)
            record("Upload", "one photo-like PNG", t0, page)

            for path, name, ready in (("Compare_models", "Compare models", "Confusion matrix"),
                                      ("Training_curves", "Training curves", "Training curves"),
                                      ("Stress_test", "Stress test", "Sweep one change")):
                t0 = time.perf_counter()
                page.goto(f"{url}/{path}")
                expect(page.get_by_text(ready).first).to_be_visible(timeout=LOAD_TIMEOUT)
                settle(page)
                record(name, "rendered", t0, page)

            t0 = time.perf_counter()
            page.goto(f"{url}/Kaggle")
            chooser = page.locator("input[type=file]")
            expect(chooser).to_be_attached(timeout=LOAD_TIMEOUT)
            chooser.set_input_files(csv)
            expect(page.get_by_text("Read 50 digits")).to_be_visible()
            page.get_by_role("button", name="Predict 50 digits").click()
            expect(page.get_by_role("button", name="Download submission.csv")).to_be_visible()
            record("Kaggle", "50 digits predicted", t0, page)

            t0 = time.perf_counter()
            page.goto(f"{url}/Look_inside")
            expect(page.get_by_text("Occlusion").first).to_be_visible(timeout=LOAD_TIMEOUT)
            settle(page)
            record("Look inside", f"first render ({next(iter(titles.values()))})", t0, page)
            for name, title in list(titles.items())[1:]:
                t0 = time.perf_counter()
                page.get_by_role("radio", name=title, exact=True).click()
                expect(page.get_by_text(f"{title} reads")).to_be_visible(timeout=LOAD_TIMEOUT)
                settle(page)
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
                settle(tab)
            record("Look inside", "three new sessions at once", t0, tabs[-1])
            for c in others:
                c.close()

            page.goto(f"{url}/Train_live")
            expect(page.get_by_text("Train a model live")).to_be_visible(timeout=LOAD_TIMEOUT)
            for name in train:
                title = REGISTRY[name].title
                t0 = time.perf_counter()
                page.get_by_role("radio", name=title, exact=True).click()
                settle(page)
                set_slider_to_min(page, "Training images")
                set_slider_to_min(page, "Epochs")
                settle(page)
                page.get_by_role("button", name="Train", exact=True).click()
                expect(page.get_by_text(f"Your {title} against the shipped one")).to_be_visible(
                    timeout=TRAIN_TIMEOUT)
                settle(page)
                record("Train live", f"{title}: 1,000 images, 1 epoch, scored", t0, page)

            t0 = time.perf_counter()
            time.sleep(10)
            record("(idle)", "10 s after the last page", t0)
            browser.close()
    finally:
        sampler.close()


def measure(artifacts: Path, train: tuple[str, ...]) -> dict:
    from mnist_core.artifacts import read_manifest
    if not os.environ.get("MNIST_DATA"):
        raise SystemExit("set MNIST_DATA to a local MNIST copy: Train live needs it")
    steps: list[dict] = []
    t0 = time.perf_counter()
    proc, url = h.start_server(artifacts)
    started = time.perf_counter() - t0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            visit(url, proc.pid, artifacts, Path(tmp), steps, train)
    finally:
        h.stop_server(proc)
    return {"when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            "commit": _git("rev-parse", "--short", "HEAD"),
            "models": list(read_manifest(artifacts)["models"]),
            "server_start_s": round(started, 1), "steps": steps}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# ---------------------------------------------------------------------------------------
# The options, measured one by one in fresh processes
# ---------------------------------------------------------------------------------------

_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
out = {'python_mb': rss()}
exec(sys.argv[1])
out['seconds'] = time.perf_counter() - t0
out['rss_mb'] = rss()
print(json.dumps(out))
"""

OPTION_CODE = {
    "numpy path: load 4 models, Look inside views and gradients": """
import numpy as np
from mnist_core.artifacts import load_models
models = load_models('artifacts')
x = np.random.default_rng(0).random((28, 28)).astype(np.float32)
out['loaded_mb'] = rss()
t1 = time.perf_counter()
for m in models.values():
    m.input_gradient(x, 3)
    (m.feature_maps(x) if m.family == 'conv' else m.hidden_activations(x))
out['views_ms'] = (time.perf_counter() - t1) * 1000
""",
    "TensorFlow: import, load 4 models, GradientTape and probes": """
import numpy as np, tensorflow as tf, keras
out['import_mb'] = rss()
from mnist_core.artifacts import load_models
models = load_models('artifacts')
x = np.random.default_rng(0).random((28, 28)).astype(np.float32)
t1 = time.perf_counter()
for m in models.values():
    if m.kind != 'keras':
        continue
    net = keras.models.load_model(f'artifacts/{m.name}.keras', compile=False)
    t = tf.constant(x[None, ..., None])
    with tf.GradientTape() as tape:
        tape.watch(t)
        lp = tf.math.log(net(t, training=False)[0, 3])
    tape.gradient(lp, t)
out['views_ms'] = (time.perf_counter() - t1) * 1000
""",
    "spawned worker: start, import mnist_core + TensorFlow, return": """
import multiprocessing as mp
from mnist_core import train_worker
out['start_s'] = train_worker.measure_start()
""",
    "onnxruntime: import only": "import onnxruntime; out['version'] = onnxruntime.__version__",
    "jax: import only": "import jax, jax.numpy as jnp; jnp.ones(3).block_until_ready()",
}


def options(python: str, names: list[str]) -> None:
    for name in names:
        res = subprocess.run([python, "-c", _PROBE, OPTION_CODE[name]], cwd=REPO,
                             capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        line = res.stdout.strip().splitlines()[-1] if res.returncode == 0 else \
            "failed: " + res.stderr.strip().splitlines()[-1]
        print(f"{name}: {line}", flush=True)


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------

def _table(run: dict) -> list[str]:
    lines = ["| page | step | s | server RSS MB | children MB | peak, server MB | "
             "peak, server + children MB |", "|---|---|---|---|---|---|---|"]
    for s in run["steps"]:
        lines.append(f"| {s['page']} | {s['what']} | {s['seconds']:.1f} | {s['server_mb']} | "
                     f"{s['children_mb']} | {s['peak_server_mb']} | {s['peak_total_mb']} |")
    worst = max(s["peak_server_mb"] for s in run["steps"])
    total = max(s["peak_total_mb"] for s in run["steps"])
    last = run["steps"][-1]
    lines += ["", f"Highest server RSS: **{worst} MB**; highest server + children: "
                  f"**{total} MB**; at the end, idle: **{last['server_mb'] + last['children_mb']} MB** "
                  f"(budget {BUDGET_MB} MB). Server start {run['server_start_s']} s; "
                  f"commit {run['commit']}, {run['when']}."]
    return lines


def write_report(results: dict, command: str) -> None:
    lines = [
        "# Memory with every page visited",
        "",
        "Written by `benchmarks/memory.py`: a real `streamlit run app.py` server and headless "
        "Chromium visit every page in turn (see the steps below), and after each step the "
        "resident set size (`VmRSS`) of the server process and of its children is read from "
        "/proc; the peaks are sampled every 0.1 s while the step runs. Models: "
        f"{', '.join(next(iter(results.values()))['models'])} (the shipped `artifacts/`). "
        f"Machine: {os.cpu_count()} CPU cores, {platform.machine()}, Python "
        f"{platform.python_version()}. Goal: the server under {BUDGET_MB} MB (Streamlit "
        "Community Cloud's smallest tier is about 690 MB).",
        "",
    ]
    for label in ("before", "after"):
        if label in results:
            lines += [f"## {label.capitalize()}", "", *_table(results[label]), ""]
    if OPTIONS.exists():
        lines += [OPTIONS.read_text().strip(), ""]
    lines += ["## Command", "", "```", command, "```", ""]
    REPORT.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    parser.add_argument("--label", default="after", choices=("before", "after"))
    parser.add_argument("--train", default="numpy,dense,cnn",
                        help="models trained on Train live, comma-separated")
    parser.add_argument("--options", nargs="*", metavar="PYTHON",
                        help="measure each option in a fresh process of PYTHON (default: "
                             "this one) instead of visiting the pages")
    args = parser.parse_args()
    if args.options is not None:
        for python in args.options or [sys.executable]:
            print(f"== {python}")
            options(python, list(OPTION_CODE))
        return 0
    if h.chromium_path() is None:
        print("error: chromium is not installed", file=sys.stderr)
        return 2
    run = measure(args.artifacts, tuple(n for n in args.train.split(",") if n))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.label] = run
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    command = ("MNIST_DATA=../shared/data/mnist .venv/bin/python benchmarks/memory.py "
               "--label before   # once on the code before the change, then --label after")
    write_report(results, command)
    print(REPORT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

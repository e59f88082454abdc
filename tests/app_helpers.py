"""Shared pieces of the app tests: a tiny artifacts folder and test images.

The artifacts are built the way ``python -m mnist_core train`` builds them (same saving,
metrics, gallery and manifest functions), from a NumPy MLP and a LeNet-5 trained for one
short epoch. The data is a few thousand real MNIST digits when ``$MNIST_DATA`` or
``../shared/data/mnist`` holds them, else digits rendered from OpenCV's fonts, so the tests
never depend on a download or on someone's ``/tmp``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

# The browser the tests drive, shared with the smoke test and the benchmarks.
from deploy.browser import CHROMIUM_ARGS, SEVEN, chromium_path, draw_stroke  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
FIXTURE_MODELS = ("numpy", "lenet5")   # one NumPy and one Keras model: both load paths
_BUILT: dict[str, Path] = {}


def mnist_path() -> Path | None:
    """A local MNIST copy: ``$MNIST_DATA`` if set (``MNIST_DATA=/nowhere`` forces the
    synthetic digits), else ``../shared/data/mnist`` if present."""
    env = os.environ.get("MNIST_DATA")
    candidate = Path(env) if env else REPO.parent / "shared" / "data" / "mnist"
    return candidate if candidate.exists() else None


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
          cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN)


def render_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One font-rendered digit, normalised like MNIST: ``(28, 28) uint8`` white on black."""
    from mnist_core.preprocess import normalise_crop

    img = np.zeros((96, 96), np.uint8)
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    cv2.putText(img, str(digit), (22, 78), font, 2.4, 255, int(rng.integers(4, 9)), cv2.LINE_AA)
    angle, shear = rng.uniform(-12, 12), rng.uniform(-0.2, 0.2)
    m = cv2.getRotationMatrix2D((48, 48), angle, rng.uniform(0.85, 1.1))
    m[0, 1] += shear
    img = cv2.warpAffine(img, m, (96, 96))
    ys, xs = np.nonzero(img > 64)
    crop = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255
    _, _, final, _ = normalise_crop(crop)
    return (final * 255).round().astype(np.uint8)


def synthetic_dataset(n_train: int = 3000, n_test: int = 600, seed: int = 0):
    from mnist_core.datasets.data import Dataset

    rng = np.random.default_rng(seed)

    def make(n):
        y = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(y)
        return np.stack([render_digit(int(d), rng) for d in y]), y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return Dataset("mnist", tuple(str(d) for d in range(10)), x_train, y_train, x_test, y_test,
                   "synthetic font digits (tests/app_helpers.py)")


def small_dataset(n_train: int = 5000, n_test: int = 600):
    """A few thousand real MNIST digits when available, else synthetic ones."""
    from mnist_core.datasets.data import Dataset, load_dataset

    path = mnist_path()
    if path is None:
        return synthetic_dataset()
    full = load_dataset(path)
    rng = np.random.default_rng(0)
    tr = rng.choice(len(full.x_train), n_train, replace=False)
    te = rng.choice(len(full.x_test), n_test, replace=False)
    return Dataset(full.name, full.class_names, full.x_train[tr], full.y_train[tr],
                   full.x_test[te], full.y_test[te], f"{full.source} (test subset)")


# ---------------------------------------------------------------------------------------
# Artifacts
# ---------------------------------------------------------------------------------------

def build_artifacts(out: Path, data, names=FIXTURE_MODELS) -> Path:
    """Train ``names`` for one short epoch and write a complete, hashed artifacts folder,
    with the same function ``python -m mnist_core train`` uses."""
    from mnist_core.training.augment import NONE
    from mnist_core.package import train_and_package

    train_and_package(names, data, out, command="tests/app_helpers.py build_artifacts",
                      train_cfg=lambda spec: replace(spec.train, epochs=1, n_val=500,
                                                     augment=NONE, warmup_epochs=0.1))
    return out


def fixture_artifacts(tmp_path_factory) -> Path:
    """The tiny artifacts folder, built once per test session (shared by every module)."""
    if "dir" not in _BUILT:
        out = tmp_path_factory.mktemp("app-artifacts")
        _BUILT["dir"] = build_artifacts(out, small_dataset())
    return _BUILT["dir"]


def damaged_copy(source: Path, dest: Path, filename: str = "numpy.npz") -> Path:
    """A copy of ``source`` with one byte of ``filename`` flipped."""
    shutil.copytree(source, dest)
    path = dest / filename
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return dest


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------

def canvas_rgba(strokes, size: int = 280, width: int = 22) -> np.ndarray:
    """What st_canvas returns: ``(size, size, 4) uint8`` white strokes, transparent background.

    ``strokes``: list of polylines, each a list of ``(x, y)`` points in canvas pixels.
    """
    img = np.zeros((size, size, 4), np.uint8)
    for line in strokes:
        pts = np.asarray(line, np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, (255, 255, 255, 255), width, cv2.LINE_AA)
    return img


def one_stroke() -> np.ndarray:
    """A "1": one thick vertical line."""
    return canvas_rgba([[(140, 45), (140, 235)]])


def digits_on_canvas(images: list[np.ndarray], size: int = 280) -> np.ndarray:
    """28x28 uint8 digits upscaled side by side into an RGBA canvas image."""
    img = np.zeros((size, size, 4), np.uint8)
    side = min(size // len(images) - 6, 200)
    x = (size - len(images) * (side + 6)) // 2
    for digit in images:
        big = cv2.resize(digit, (side, side), interpolation=cv2.INTER_LINEAR)
        y = (size - side) // 2
        # As the canvas paints: white strokes whose alpha is their coverage.
        img[y:y + side, x:x + side, :3] = np.where(big[..., None] > 0, 255, 0)
        img[y:y + side, x:x + side, 3] = big
        x += side + 6
    return img


def png_bytes(img: np.ndarray, ext: str = ".png") -> bytes:
    """Encode an RGB/RGBA/gray ``uint8`` array (RGB order) as PNG/JPEG bytes."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(ext, arr)
    assert ok
    return buf.tobytes()


def paper_digit(digit28: np.ndarray, side: int = 240) -> np.ndarray:
    """A 28x28 digit as dark ink on light paper, upscaled: like a photo or scan, RGB."""
    big = cv2.resize(digit28, (side, side), interpolation=cv2.INTER_CUBIC)
    page = np.full((side + 60, side + 60), 235, np.uint8)
    page[30:30 + side, 30:30 + side] = 235 - (big.astype(np.int32) * 205 // 255)
    return np.repeat(page[..., None], 3, axis=2)


# ---------------------------------------------------------------------------------------
# A real server and browser (tests/test_browser.py, benchmarks/browser_bench.py)
# ---------------------------------------------------------------------------------------

def real_artifacts() -> Path | None:
    """The repository's trained artifacts, once they exist."""
    path = REPO / "artifacts"
    return path if (path / "manifest.json").is_file() else None


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(artifacts: Path, port: int | None = None, timeout: float = 120.0):
    """``streamlit run app.py`` on a free port; returns ``(process, url)`` once it serves.

    Waits on the server's own "URL:" line rather than polling, and fails with its output
    if it exits or stays silent past ``timeout`` seconds. A reader thread keeps draining
    the output afterwards so a full pipe never blocks the server.
    """
    import queue
    import subprocess
    import sys
    import threading
    import time

    port = port or free_port()
    env = {**os.environ, "MNIST_STUDIO_ARTIFACTS": str(artifacts), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)  # exited

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if "URL:" in line:
            return proc, f"http://127.0.0.1:{port}"
    stop_server(proc)
    raise RuntimeError("streamlit did not start:\n" + "".join(seen))


def stop_server(proc) -> None:
    import subprocess
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def vm_rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc (psutil is not installed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def probability_bars(at) -> list[dict[str, dict]]:
    """Every set of probability bars an AppTest shows (``ui.charts.probability_bars`` in
    ``st.html``), in page order: model title -> ``{"heights": [10 bar heights, 0-1],
    "top": index of the coloured bar, "label": the percentage written over it}``."""
    import re

    out = []
    for element in at.get("html"):
        if 'class="mb"' not in element.proto.body:
            continue
        bars = {}
        for panel in element.proto.body.split('<div class="mb-m"')[1:]:
            title = re.search(r'<div class="mb-t">(.*?)</div>', panel).group(1)
            columns = panel.split('<div class="mb-c"')[1:]
            heights = [float(re.search(r'class="mb-b" style="height:([\d.]+)%', c).group(1)) / 100
                       for c in columns]
            tops = [k for k, c in enumerate(columns) if "mb-v" in c]
            labels = re.findall(r'<span class="mb-v[^"]*"[^>]*>([^<]*)</span>', panel)
            bars[title] = {"heights": heights, "top": tops[0] if len(tops) == 1 else tops,
                           "label": labels[0] if len(labels) == 1 else labels}
        out.append(bars)
    return out

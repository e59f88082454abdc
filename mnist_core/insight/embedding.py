"""Model maps: each model's test digits laid out in 2-D from its last hidden layer.

For every model, the last hidden layer (:meth:`Model.embedding_features
<mnist_core.models.model.Model.embedding_features>`, what the output layer reads) of the test
digits is reduced by PCA to :attr:`MapConfig.components` dimensions and laid out in 2-D
by t-SNE with **openTSNE** (offline: ``python -m mnist_core embed``, or after training in
:func:`mnist_core.package.train_and_package`). ``artifacts/<name>.map.npz`` ships the
coordinates, true labels, the model's answers, the PCA and the reduced test digits;
``artifacts/digits.map.npz`` holds the test digits themselves once, for every model.

A new digit (a drawing) is placed without openTSNE, in NumPy (:meth:`ModelMap.place`): its features
go through the same PCA, its :attr:`MapConfig.neighbours` nearest test digits there get
Gaussian weights whose bandwidth gives the perplexity :attr:`MapConfig.place_perplexity`,
and it lands at the weighted mean of their coordinates. That is how openTSNE's own
``transform`` initialises new points (``initialization="weighted"``: the new points'
affinities to the reference points times the reference embedding), without its further
gradient steps.

Why openTSNE, and why not in the server (``benchmarks/MAPS_ATTACK.md``, measured by
``benchmarks/maps_attack.py`` on this project's shared 2-core machine):

* openTSNE (BSD, maintained, FFT-accelerated t-SNE) needs only NumPy, SciPy and
  scikit-learn (+209 MB installed here) and can place new points into an existing
  embedding; umap-learn adds numba and llvmlite on top of the same SciPy/scikit-learn
  (484 MB installed here), and importing it took ~10 s and ~770 MB, because it also
  imports TensorFlow when that is installed, as here.
* Importing openTSNE alone takes ~2.5 s and ~190 MB (SciPy and scikit-learn), which the
  server should not carry, and its ``transform`` of one digit into a 10,000-digit map
  took ~16 s; :meth:`ModelMap.place` takes 0.3-0.6 ms (median, plus 0.2-1.5 ms for the
  model's features), and 98.7-99.3% of 300 MNIST training digits placed that way land in
  their own class's cluster. So openTSNE runs only where maps are made, and the server
  never imports it.

Arrays: images ``(N, 28, 28) float32 in [0, 1]`` (or ``uint8`` as stored); coordinates
``(N, 2) float32``; labels and answers ``(N,) uint8``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..artifacts.files import ArtifactError, _scrubbed, shown, verified_path
from ..models.model import Model

MAP_SUFFIX = ".map.npz"
DIGITS_FILE = "digits" + MAP_SUFFIX   # the test digits, stored once for every map


@dataclass(frozen=True)
class MapConfig:
    """How a model map is made and how new digits are placed on it."""

    components: int = 50            # PCA dimensions kept before t-SNE (the usual 50), also
                                    # where a new digit's neighbours are found
    perplexity: float = 30.0        # t-SNE's effective number of neighbours (openTSNE's
                                    # default; 10,000 digits of 10 classes)
    seed: int = 0                   # openTSNE's random_state: the same map on every rebuild
    n_jobs: int = 2                 # openTSNE's threads (this project's machines: 2 cores)
    neighbours: int = 15            # test digits a new digit is placed among: 3x
                                    # place_perplexity, openTSNE's k for transform
    place_perplexity: float = 5.0   # perplexity of the placing weights (openTSNE
                                    # transform's default)
    bandwidth_steps: int = 50       # bisection steps for the Gaussian's bandwidth
    bandwidth_tol: float = 1e-4     # ... stop when the entropy is this close (nats)


MAP = MapConfig()


def rebuild_hint() -> str:
    return "rebuild with `python -m mnist_core embed --data PATH_TO_MNIST`"


# ---------------------------------------------------------------------------------------
# Placing a digit (the server's part: NumPy only)
# ---------------------------------------------------------------------------------------

def _weights(dist2: np.ndarray, perplexity: float, steps: int, tol: float) -> np.ndarray:
    """Gaussian weights ``(k,) float64`` summing to 1 over squared distances ``dist2``
    ``(k,)``, their bandwidth bisected so the weights' entropy is ``log(perplexity)``."""
    d = dist2 - dist2.min()  # shift for stability: the weights are normalised anyway
    target = np.log(min(perplexity, len(d)))
    lo, hi, beta = 0.0, np.inf, 1.0 / max(float(np.median(d)), 1e-12)
    for _ in range(steps):
        w = np.exp(-d * beta)
        w /= w.sum()
        entropy = float(-(w * np.log(np.maximum(w, 1e-300))).sum())
        if abs(entropy - target) < tol:
            break
        if entropy > target:   # too flat: narrow the Gaussian
            lo, beta = beta, beta * 2 if hi == np.inf else (beta + hi) / 2
        else:
            hi, beta = beta, (beta + lo) / 2
    return w


@dataclass
class ModelMap:
    """One model's map, as shipped in ``<name>.map.npz``.

    ``coords``: ``(N, 2) float32`` t-SNE coordinates of the test digits; ``labels`` and
    ``preds``: ``(N,) uint8`` true labels and the model's answers (one reading, no views);
    ``mean`` ``(D,) float32`` and ``components`` ``(C, D) float32``: the PCA of the last
    hidden layer; ``reduced``: ``(N, C) float32``, the test digits in that PCA space.
    """

    name: str
    coords: np.ndarray
    labels: np.ndarray
    preds: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    reduced: np.ndarray
    cfg: MapConfig = MAP
    _sq_norms: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        # |r|^2 of every test digit, once: a placement is then one (N, C) product.
        self._sq_norms = (self.reduced.astype(np.float64) ** 2).sum(1)

    def project(self, features: np.ndarray) -> np.ndarray:
        """Last-hidden-layer features ``(M, D)`` -> ``(M, C) float32`` in the map's PCA."""
        return ((np.asarray(features, np.float32) - self.mean) @ self.components.T
                ).astype(np.float32)

    def place(self, features: np.ndarray) -> np.ndarray:
        """Where digits with these last-hidden-layer ``features`` ``(M, D)`` land:
        ``(M, 2) float32`` (see the module's docstring)."""
        cfg, out = self.cfg, []
        for q in self.project(features):
            dist2 = np.maximum(self._sq_norms - 2.0 * (self.reduced @ q) + float(q @ q), 0)
            k = min(cfg.neighbours, len(dist2))
            near = np.argpartition(dist2, k - 1)[:k]
            w = _weights(dist2[near], cfg.place_perplexity, cfg.bandwidth_steps,
                         cfg.bandwidth_tol)
            out.append(w @ self.coords[near])
        return np.asarray(out, np.float32).reshape(-1, 2)

    def neighbour_distances(self, reduced: np.ndarray, k: int, *,
                            skip_exact: bool = False) -> np.ndarray:
        """Euclidean distances from points already in the map's PCA space (``reduced``
        ``(M, C)``, from :meth:`project`) to their ``k`` nearest test digits: ``(M, k)
        float32``, nearest first. ``skip_exact``: a test digit at distance ~0 (the point
        is that digit itself) is passed over, so a test digit is measured against the
        others (leave one out). Behind :mod:`mnist_core.reading.novelty`'s "far from every digit"."""
        q = np.asarray(reduced, np.float32).reshape(-1, self.reduced.shape[1])
        sq = self._sq_norms.astype(np.float32)
        d2 = q @ self.reduced.T            # float32 in place: |r|^2 - 2 q.r + |q|^2
        d2 *= -2.0
        d2 += sq[None, :]
        d2 += (q ** 2).sum(1)[:, None]
        np.maximum(d2, 0, out=d2)
        if skip_exact:   # float16-stored coordinates: an exact match is ~1e-3 away
            d2[d2 < 1e-4 * (1.0 + sq[None, :])] = np.inf
        k = min(k, d2.shape[1])
        near = np.partition(d2, k - 1, axis=1)[:, :k]
        return np.sqrt(np.sort(near, axis=1)).astype(np.float32)

    def place_images(self, model: Model, x: np.ndarray) -> np.ndarray:
        """Where ``model`` (the map's own model) puts images ``x`` ``(M, 28, 28) float32
        in [0, 1]``: ``(M, 2) float32``."""
        return self.place(model.embedding_features(np.asarray(x, np.float32).reshape(-1, 28, 28)))


# ---------------------------------------------------------------------------------------
# Reading and writing the files
# ---------------------------------------------------------------------------------------

_MAP_ARRAYS = ("coords", "labels", "preds", "mean", "components", "reduced")


def _problem(f: dict) -> str | None:
    """The first way a map file's arrays do not fit together, or None."""
    missing = [k for k in _MAP_ARRAYS if k not in f]
    if missing:
        return f"{', '.join(missing)} missing"
    n = len(f["coords"])
    if f["coords"].shape != (n, 2) or not np.isfinite(f["coords"]).all():
        return "coordinates are not (N, 2) finite numbers"
    if f["labels"].shape != (n,) or f["preds"].shape != (n,):
        return "labels or answers are not one per digit"
    if max(int(f["labels"].max(initial=0)), int(f["preds"].max(initial=0))) > 9:
        return "a label is not 0-9"
    c, d = f["components"].shape if f["components"].ndim == 2 else (-1, -1)
    if f["mean"].shape != (d,) or f["reduced"].shape != (n, c):
        return "the PCA's shapes do not match"
    return None


def _read_npz(path: Path, directory: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:  # a damaged zip raises many types (BadZipFile, ValueError...)
        raise ArtifactError(f"{shown(path)} could not be read ({type(exc).__name__}: "
                            f"{_scrubbed(str(exc), directory)}); {rebuild_hint()}") from exc


def load_map(name: str, directory: str | Path, manifest: dict | None = None,
             cfg: MapConfig = MAP) -> ModelMap:
    """``<name>.map.npz`` from ``directory``, its SHA-256 checked against the manifest.
    Raises :class:`ArtifactError` (naming the file and the command that rebuilds it) for
    a missing, unlisted, damaged or malformed file."""
    try:
        path = verified_path(directory, name + MAP_SUFFIX, manifest)
    except ArtifactError as exc:
        raise ArtifactError(str(exc).split("; rebuild")[0] + f"; {rebuild_hint()}") from exc
    f = _read_npz(path, directory)
    problem = _problem(f)
    if problem:
        raise ArtifactError(f"{shown(path)} is not a model map: {problem}; {rebuild_hint()}")
    return ModelMap(name, f["coords"].astype(np.float32), f["labels"].astype(np.uint8),
                    f["preds"].astype(np.uint8), f["mean"].astype(np.float32),
                    f["components"].astype(np.float32), f["reduced"].astype(np.float32), cfg)


def load_digits(directory: str | Path, manifest: dict | None = None) -> np.ndarray:
    """The mapped test digits, ``(N, 28, 28) uint8`` (``digits.map.npz``, hash-checked)."""
    try:
        path = verified_path(directory, DIGITS_FILE, manifest)
    except ArtifactError as exc:
        raise ArtifactError(str(exc).split("; rebuild")[0] + f"; {rebuild_hint()}") from exc
    images = _read_npz(path, directory).get("images")
    if images is None or images.ndim != 3 or images.shape[1:] != (28, 28) \
            or images.dtype != np.uint8:
        raise ArtifactError(f"{shown(path)} holds no (N, 28, 28) uint8 images; {rebuild_hint()}")
    return images


def load_maps(directory: str | Path, names, manifest: dict | None = None
              ) -> tuple[dict[str, ModelMap], np.ndarray]:
    """Every model's map in ``names`` and the mapped test digits ``(N, 28, 28) uint8``;
    :class:`ArtifactError` for the first missing or damaged file, or maps of another
    test set than the digits'."""
    from ..artifacts.files import read_manifest

    manifest = manifest if manifest is not None else read_manifest(directory)
    maps = {n: load_map(n, directory, manifest) for n in names}
    digits = load_digits(directory, manifest)
    for n, m in maps.items():
        if len(m.coords) != len(digits):
            raise ArtifactError(f"{shown(Path(directory) / (n + MAP_SUFFIX))} maps "
                                f"{len(m.coords)} digits, {DIGITS_FILE} holds {len(digits)}; "
                                f"{rebuild_hint()}")
    return maps, digits


# ---------------------------------------------------------------------------------------
# Making maps (offline: imports openTSNE)
# ---------------------------------------------------------------------------------------

def pca(features: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (D,), components (C, D))`` float32 of ``features`` ``(N, D)``: the top
    ``components`` principal axes (eigenvectors of the covariance, largest first, each
    with its largest entry positive so a rebuild gives the same signs)."""
    f = np.asarray(features, np.float64)
    mean = f.mean(0)
    centred = f - mean
    vals, vecs = np.linalg.eigh(centred.T @ centred)
    top = vecs[:, np.argsort(-vals, kind="stable")[:min(components, f.shape[1])]].T
    signs = np.sign(top[np.arange(len(top)), np.abs(top).argmax(1)])
    return mean.astype(np.float32), (top * signs[:, None]).astype(np.float32)


def compute_map(model: Model, x: np.ndarray, labels: np.ndarray, cfg: MapConfig = MAP,
                preds: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The arrays of ``<name>.map.npz`` for ``model`` over test digits ``x`` ``(N, 28, 28)
    float32 in [0, 1]`` with true ``labels`` ``(N,)``: coordinates by openTSNE from the
    PCA of the last hidden layer (stored as float16: 10,000 points, ~0.05 units of a
    ~100-unit map at worst). ``preds``: the model's answers ``(N,)`` when already known
    (training has just scored the test set), else predicted here."""
    from openTSNE import TSNE

    x = np.asarray(x, np.float32)
    features = model.embedding_features(x)
    mean, components = pca(features, cfg.components)
    # t-SNE runs on the PCA coordinates as shipped (float16), so placing is consistent.
    reduced = ((features - mean) @ components.T).astype(np.float16)
    perplexity = min(cfg.perplexity, (len(x) - 1) / 3)  # openTSNE needs 3 x perplexity < N
    coords = np.asarray(TSNE(perplexity=perplexity, n_jobs=cfg.n_jobs, random_state=cfg.seed,
                             initialization="pca").fit(reduced.astype(np.float32)))
    if preds is None:
        preds = model.predict_proba(x).argmax(1)
    return {"coords": coords.astype(np.float16), "labels": np.asarray(labels, np.uint8),
            "preds": np.asarray(preds, np.uint8), "mean": mean, "components": components, "reduced": reduced}


def write_maps(out: str | Path, models: dict[str, Model], x_test: np.ndarray,
               y_test: np.ndarray, cfg: MapConfig = MAP,
               log: Callable[[str], None] | None = None,
               preds: dict[str, np.ndarray] | None = None) -> list[Path]:
    """Write ``<name>.map.npz`` for every model in ``models`` and ``digits.map.npz`` (the
    test digits, ``x_test`` ``(N, 28, 28) uint8``) into ``out``; the caller re-hashes the
    manifest. ``preds``: model name -> its answers on the test set, where known. Returns
    the paths written."""
    import time

    out, log = Path(out), log or (lambda line: None)
    x_float = np.asarray(x_test, np.float32) / 255.0
    written = []
    for name, model in models.items():
        start = time.perf_counter()
        arrays = compute_map(model, x_float, y_test, cfg, (preds or {}).get(name))
        path = out / (name + MAP_SUFFIX)
        np.savez_compressed(path, **arrays)
        written.append(path)
        log(f"== {name}: map of {len(x_float)} test digits in "
            f"{time.perf_counter() - start:.0f}s ({path.stat().st_size / 1e6:.2f} MB)")
    path = out / DIGITS_FILE
    np.savez_compressed(path, images=np.asarray(x_test, np.uint8))
    written.append(path)
    return written


def manifest_entry(cfg: MapConfig = MAP, command: str = "") -> dict:
    """What the manifest records about the maps (under ``"maps"``)."""
    import importlib.metadata as md

    try:
        version = md.version("openTSNE")
    except md.PackageNotFoundError:
        version = None
    return {"config": asdict(cfg), "openTSNE": version, "command": command}

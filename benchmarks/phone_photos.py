"""What a phone photo costs the server; writes benchmarks/PHONE_PHOTOS.md.

Synthesises 12-megapixel JPEGs of Chars74K digits in pen on unevenly lit paper (every
other one stored sideways with an EXIF orientation) and reads each as Upload does
(``decode_image``, ``read_digits``, BLAS on one thread), in fresh processes per checkout:
time per photo (decode, read; wall and CPU), peak memory per photo (``VmHWM`` rise, one
process per photo), and RSS after ``--photos`` photos one at a time and five at a time in
threads. Each ``--code LABEL=ROOT[,VAR=VALUE...]`` is a checkout (its ``mnist_core`` and
``artifacts/``) and the environment of its processes (default ``after=.``):

    .venv/bin/python benchmarks/phone_photos.py --code before=/tmp/before --code after=. \
        --code after+mallopt=.,MALLOC_MMAP_THRESHOLD_=1048576,MALLOC_TRIM_THRESHOLD_=2097152
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness as h

REPO = h.REPO
STROKES = REPO.parent / "shared" / "data" / "handwriting-dev" / "chars74k_digits_strokes.jsonl"
SIZE = (4000, 3000)       # a 12-megapixel phone photo, landscape as the sensor stores it
QUALITY = 90              # phones save JPEGs at about this quality
NOISE = 14                # sensor noise, grey levels (std): what makes a phone JPEG 4-6 MB
DISTINCT = 10             # photos synthesised (one per digit), cycled through for 50
THREADS = 5               # uploads at a time in the concurrent run


def synthesise(out: Path, n: int = DISTINCT, seed: int = 0) -> list[tuple[Path, int]]:
    """``n`` phone photos of digits 0-9 in ``out``: ``[(path, label)]``."""
    import cv2
    import numpy as np
    from PIL import Image

    from mnist_core.datasets.handwriting import load_strokes

    rng = np.random.default_rng(seed)
    samples = load_strokes(STROKES)
    first = {}
    for label, strokes in samples:
        first.setdefault(label, strokes)
    photos = []
    for i in range(n):
        label = i % 10
        sideways = i % 2 == 1  # held upright: composed portrait, stored as the sensor lies
        w, h = SIZE[::-1] if sideways else SIZE
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        pts = np.concatenate(first[label])
        lo, hi = pts.min(0), pts.max(0)
        height = rng.uniform(0.35, 0.6) * h
        scale = height / max(hi[1] - lo[1], 1.0)
        origin = np.array([w / 2 - (hi[0] - lo[0]) * scale / 2, h / 2 - height / 2])
        pen = int(rng.uniform(0.03, 0.06) * height)
        ink = np.zeros((h, w), np.uint8)
        for s in first[label]:
            p = np.round(((s - lo) * scale + origin) * 16).astype(np.int32)
            cv2.polylines(ink, [p], False, 255, pen, cv2.LINE_AA, 4)
        ink = cv2.GaussianBlur(ink, (0, 0), 2.0).astype(np.float32) / 255
        # Paper lit unevenly: a tilt and a soft shadow; dark blue-black ink; sensor noise.
        gx, gy = rng.uniform(-0.2, 0.2, 2)
        light = 1 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        light -= 0.2 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.5 * w) ** 2))
        paper = rng.uniform(205, 240) + rng.uniform(-8, 8, 3).astype(np.float32)
        pen_colour = np.array(rng.uniform(15, 60, 3), np.float32)
        img = paper * (1 - ink[..., None]) + pen_colour * ink[..., None]
        img *= light[..., None]
        img += rng.normal(0, NOISE, img.shape).astype(np.float32)
        pic = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        del img, ink, light, yy, xx
        exif = Image.Exif()
        if sideways:  # stored turned a quarter left, tagged "rotate 90 CW to display"
            pic = pic.transpose(Image.Transpose.ROTATE_90)
            exif[0x0112] = 6
        path = out / f"photo-{i}-digit-{label}.jpg"
        pic.save(path, quality=QUALITY, exif=exif.tobytes())
        photos.append((path, label))
    return photos


def warmup_photo(out: Path) -> Path:
    """A small photo that takes every stage once before anything is measured."""
    import numpy as np
    from PIL import Image

    img = np.full((360, 480, 3), 225, np.uint8)
    img[100:260, 230:250] = 30
    path = out / "warmup.jpg"
    Image.fromarray(img).save(path, quality=QUALITY)
    return path


def worker(mode: str, root: str, photos: list[str], labels: list[int], warm: str) -> dict:
    sys.path.insert(0, root)
    os.chdir(root)
    from threadpoolctl import threadpool_limits

    from mnist_core.artifacts.files import load_models
    from mnist_core.reading.inference import read_digits
    from mnist_core.preprocess import decode_image

    threadpool_limits(1, user_api="blas")  # as ui.data does in the server
    models = load_models()

    def read(path: str) -> dict:
        data = Path(path).read_bytes()
        w0, c0 = time.perf_counter(), time.process_time()
        image = decode_image(data)
        w1 = time.perf_counter()
        readings = read_digits(image, models)
        w2, c2 = time.perf_counter(), time.process_time()
        return {"decoded": list(image.shape[:2]), "decode_s": w1 - w0, "read_s": w2 - w1,
                "wall_s": w2 - w0, "cpu_s": c2 - c0, "end": w2,
                "answer": "".join(str(r.digit("cnn")) for r in readings)}

    read(warm)
    gc.collect()
    idle = h.rss_mb()
    if mode == "peak":
        h.reset_peak_rss()  # so a photo cannot hide in what loading the models freed
        before = h.rss_mb()
        one = read(photos[0])
        return {**one, "peak_mb": h.peak_rss_mb() - before, "label": labels[0]}
    if mode == "serial":
        rows = [read(p) for p in photos]
    else:  # THREADS at a time, each batch submitted together like simultaneous uploads
        rows = []
        with ThreadPoolExecutor(THREADS) as pool:
            for start in range(0, len(photos), THREADS):
                t0 = time.perf_counter()
                batch = list(pool.map(read, photos[start:start + THREADS]))
                rows += [{**r, "latency_s": r["end"] - t0} for r in batch]
    gc.collect()
    right = sum(r["answer"] == str(y) for r, y in zip(rows, labels))
    return {"rows": rows, "idle_mb": idle, "after_mb": h.rss_mb(), "right": right}


def run_worker(mode: str, root: Path, photos: list[tuple[Path, int]], warm: Path,
               env: dict[str, str] | None = None) -> dict:
    return h.run_json([sys.executable, __file__, "--worker", mode, "--root", str(root), "--warm",
                       str(warm), "--photo-list", json.dumps([[str(p), y] for p, y in photos])],
                      {"TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


def measure(root: Path, env: dict[str, str], photos: list[tuple[Path, int]], n: int, peaks: int,
            repeats: int, warm: Path) -> dict:
    cycle = [photos[i % len(photos)] for i in range(n)]
    peak = [run_worker("peak", root, [photos[i % len(photos)]], warm, env) for i in range(peaks)]
    serial = run_worker("serial", root, cycle, warm, env)
    threads = [run_worker("threads", root, cycle, warm, env) for _ in range(repeats)]
    return {"peak": peak, "serial": serial, "threads": threads}


def summary(result: dict) -> dict:
    rows = result["serial"]["rows"]
    return {
        "decoded": "x".join(map(str, rows[0]["decoded"][::-1])),
        "decode_ms": 1000 * statistics.median(r["decode_s"] for r in rows),
        "read_ms": 1000 * statistics.median(r["read_s"] for r in rows),
        "wall_ms": 1000 * statistics.median(r["wall_s"] for r in rows),
        "cpu_ms": 1000 * statistics.median(r["cpu_s"] for r in rows),
        "peak_mb": max(p["peak_mb"] for p in result["peak"]),
        "peak_median_mb": statistics.median(p["peak_mb"] for p in result["peak"]),
        "serial_idle": result["serial"]["idle_mb"], "serial_after": result["serial"]["after_mb"],
        "right": result["serial"]["right"], "n": len(rows),
        "thread_latency_s": statistics.median(r["latency_s"] for t in result["threads"] for r in t["rows"]),
        "thread_max_s": max(r["latency_s"] for t in result["threads"] for r in t["rows"]),
        "thread_idle": statistics.median(t["idle_mb"] for t in result["threads"]),
        "thread_growth": sorted(t["after_mb"] - t["idle_mb"] for t in result["threads"]),
    }


def markdown(summaries: dict[str, dict], photos: list[tuple[Path, int]], args, command: str
             ) -> str:
    """The report below its title."""
    sizes = [p.stat().st_size / 2**20 for p, _ in photos]
    rows = [
        ("Decoded image (stored orientation)", lambda s: s["decoded"]),
        ("Decode, median ms", lambda s: f"{s['decode_ms']:.0f}"),
        ("Preprocess + read (every model), median ms", lambda s: f"{s['read_ms']:.0f}"),
        ("**Server time per photo**, median wall ms", lambda s: f"**{s['wall_ms']:.0f}**"),
        ("Server CPU per photo, median ms (all threads)", lambda s: f"{s['cpu_ms']:.0f}"),
        (f"**Peak memory per photo**, MB (max of {args.peaks} fresh processes)",
         lambda s: f"**{s['peak_mb']:.0f}** (median {s['peak_median_mb']:.0f})"),
        (f"RSS idle -> after {args.photos} photos one at a time, MB",
         lambda s: f"{s['serial_idle']:.0f} -> {s['serial_after']:.0f}"),
        (f"RSS growth after {args.photos} photos {THREADS} at a time, MB: median "
         f"(each of {args.repeats} processes)",
         lambda s: f"+{statistics.median(s['thread_growth']):.0f} ("
                   + ", ".join(f"+{g:.0f}" for g in s["thread_growth"]) + ")"),
        (f"{THREADS} at a time: time to each answer, median (max) s",
         lambda s: f"{s['thread_latency_s']:.2f} ({s['thread_max_s']:.2f})"),
        ("CNN read the digit right", lambda s: f"{s['right']}/{s['n']}"),
    ]
    table = "\n".join(h.table(["", *summaries], [(name, *map(f, summaries.values()))
                                                 for name, f in rows]))
    codes = ", ".join(f"`{k}` = `{root}`" + (" with " if env else "")
                      + " and ".join(f"`{e}={v}`" for e, v in env.items())
                      for k, root, env in args.code)
    return f"""What one 12-megapixel phone photo costs the server (`benchmarks/phone_photos.py`).
{h.measured(None)} Code measured: {codes}.

Photos: {len(photos)} synthesised {SIZE[0]}x{SIZE[1]} JPEGs at quality {QUALITY}
({min(sizes):.1f}-{max(sizes):.1f} MB), every other one stored sideways (EXIF orientation 6),
cycled through for {args.photos} photos, each read as the Upload page reads it.

{table}

Server time: one photo at a time in one process (models loaded, warmed up). Peak memory:
the rise of `VmHWM` (reset after `malloc_trim(0)` just before the photo) over the RSS
before it, one fresh process per photo. "{THREADS} at a time": batches of {THREADS} photos
on {THREADS} threads, as simultaneous uploads run in the server, each answer timed from
its batch's start, in {args.repeats} fresh processes; RSS read after `gc.collect()`. What
stays is the C heap (glibc's per-thread arenas and raised trim thresholds);
`MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` fix those from the start, the values
`mnist_core.tuning.return_big_buffers` sets with `mallopt` in the server.

{chr(10).join(h.code_block(command))}
"""


def _code(spec: str) -> tuple[str, str, dict[str, str]]:
    """``LABEL=ROOT[,VAR=VALUE...]`` -> ``(label, root, {VAR: VALUE})``."""
    label, rest = spec.split("=", 1)
    root, *env = rest.split(",")
    return label, root, dict(e.split("=", 1) for e in env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", action="append", metavar="LABEL=ROOT[,VAR=VALUE...]",
                        help="a checkout to measure, with environment variables for its "
                             "processes if given (repeatable; default after=.)")
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--peaks", type=int, default=5, help="photos measured for peak memory")
    parser.add_argument("--repeats", type=int, default=3,
                        help=f"processes reading the photos {THREADS} at a time")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "PHONE_PHOTOS.md"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--warm", help=argparse.SUPPRESS)
    parser.add_argument("--photo-list", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        pairs = json.loads(args.photo_list)
        out = worker(args.worker, args.root, [p for p, _ in pairs], [y for _, y in pairs],
                     args.warm)
        print(json.dumps(out))
        return 0
    args.code = [_code(c) for c in (args.code or ["after=."])]
    with tempfile.TemporaryDirectory() as tmp:
        photos = synthesise(Path(tmp))
        warm = warmup_photo(Path(tmp))
        summaries = {}
        for label, root, env in args.code:
            print(f"measuring {label} ({root} {env})", file=sys.stderr, flush=True)
            summaries[label] = summary(measure(Path(root).resolve(), env, photos, args.photos,
                                               args.peaks, args.repeats, warm))
            print(json.dumps(summaries[label]), file=sys.stderr, flush=True)
        h.write_report(args.out, "Phone photos",
                       [markdown(summaries, photos, args, h.command(argv=argv))])
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

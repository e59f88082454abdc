"""30 learners saving at once: every row present afterwards, none duplicated, and the save
latency (p50, p95) on SQLite and on PostgreSQL.

Each learner is a thread with its own engine (a Streamlit server runs each session's script
in its own thread; replicas would be processes, each with its own engine) calling
``class_store.save_digit``, the function the Collect page calls, for 20 digits, each save
retried once (a double click: must not duplicate). All start together on a barrier.

    .venv/bin/python benchmarks/class_save_bench.py                      # SQLite only
    .venv/bin/python benchmarks/class_save_bench.py --pg "$(bash scripts/postgres.sh)"
    ... --write benchmarks/CLASS_SAVE.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa

import harness as h
from mnist_core.classroom import class_access, class_engine, class_schema, class_store as cs


@dataclass(frozen=True)
class BenchConfig:
    """The load: as the issue states it."""

    sessions: int = 30      # learners saving at once
    digits: int = 20        # digits each learner saves
    retries: int = 1        # each save sent again this many times (must not duplicate)


def learner(engine, code: str, index: int, cfg: BenchConfig, start: threading.Barrier,
            latencies: list[float], ids: list[str], errors: list[str]) -> None:
    rng = np.random.default_rng(index)
    start.wait()
    for k in range(cfg.digits):
        d = cs.Digit(cs.new_digit_id(), code, f"w-{index:04d}", k % 10, "collect",
                     rng.integers(0, 256, (28, 28), dtype=np.uint8), {"cnn": k % 10},
                     strokes='{"objects":[]}')
        for attempt in range(1 + cfg.retries):
            t0 = time.perf_counter()
            try:
                cs.save_digit(engine, d)
            except class_engine.ClassStoreError as exc:
                errors.append(f"{exc.kind}: {exc}")
                continue
            if attempt == 0:
                latencies.append(1000 * (time.perf_counter() - t0))
        ids.append(d.id)


def run(url: str, cfg: BenchConfig) -> dict:
    setup = class_engine.make_engine(url)
    class_schema.migrate(setup)
    code = "bench-" + uuid.uuid4().hex[:8]
    class_access.create_class(setup, code, "bench-pin")   # digits go only into a class
    engines = [class_engine.make_engine(url) for _ in range(cfg.sessions)]
    start = threading.Barrier(cfg.sessions)
    latencies: list[float] = []
    ids: list[str] = []
    errors: list[str] = []
    threads = [threading.Thread(target=learner, args=(e, code, i, cfg, start, latencies, ids,
                                                      errors)) for i, e in enumerate(engines)]
    t0 = time.perf_counter()
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - t0
    counts = cs.count_ids(setup, ids)
    with setup.connect() as conn:
        in_class = conn.execute(sa.select(sa.func.count()).select_from(class_schema.digits_table)
                                .where(class_schema.digits_table.c.class_code == code)).scalar_one()
    cs.delete_class(setup, code)
    for e in [setup, *engines]:
        e.dispose()
    q = np.percentile(latencies, [50, 95, 99]) if latencies else [float("nan")] * 3
    return {"backend": sa.make_url(url).get_backend_name(), "saves": len(latencies),
            "expected": cfg.sessions * cfg.digits, "rows": int(in_class),
            "missing": sum(1 for n in counts.values() if n == 0),
            "duplicated": sum(1 for n in counts.values() if n > 1), "errors": len(errors),
            "first_error": errors[0] if errors else "", "p50": q[0], "p95": q[1], "p99": q[2],
            "max": max(latencies, default=float("nan")),
            "mean": statistics.fmean(latencies) if latencies else float("nan"), "wall": wall}


def table(results: list[dict]) -> list[str]:
    ms = ("p50", "p95", "p99", "max")
    return h.table(["backend", "saves", "rows afterwards", "missing", "duplicated", "errors",
                    *(f"{k} ms" for k in ms), "wall s"],
                   [(r["backend"], f"{r['saves']} of {r['expected']}", r["rows"], r["missing"],
                     r["duplicated"], r["errors"], *(f"{r[k]:.1f}" for k in ms),
                     f"{r['wall']:.2f}") for r in results])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sqlite", help="SQLite file (default: a temporary one)")
    parser.add_argument("--pg", help="PostgreSQL SQLAlchemy URL (scripts/postgres.sh prints one)")
    parser.add_argument("--write", help="write the result as Markdown to this file")
    args = parser.parse_args()
    cfg = BenchConfig()
    urls = [class_engine.sqlite_url(args.sqlite or Path(tempfile.mkdtemp()) / "bench.sqlite")]
    if args.pg:
        urls.append(args.pg)
    results = [run(u, cfg) for u in urls]
    for r in results:
        if r["first_error"]:
            print(f"{r['backend']}: first error: {r['first_error']}", file=sys.stderr)
    out = table(results)
    print("\n".join(out))
    if args.write:
        postgres = (f"PostgreSQL {pg_version(args.pg)} on 127.0.0.1, same machine (URL from "
                    "`bash scripts/postgres.sh`)." if args.pg else "PostgreSQL not run.")
        h.write_report(args.write, "30 learners saving at once", [
            h.measured(h.command(argv=["--pg", "URL"] if args.pg else []), "SQLAlchemy")
            + " " + postgres, "",
            f"{cfg.sessions} threads, each with its own engine, start together and each save "
            f"{cfg.digits} digits through `class_store.save_digit` (what the Collect page calls), "
            f"every save sent {1 + cfg.retries} times with the same client id. Latency is the "
            f"first attempt of each save (connect from the pool, one transaction, commit). "
            f"'rows afterwards' counts the class's rows; 'missing' / 'duplicated' check every "
            f"id saved.", "", *out])


def pg_version(url: str) -> str:
    with sa.create_engine(url).connect() as conn:
        return conn.exec_driver_sql("SHOW server_version").scalar().split()[0]


if __name__ == "__main__":
    main()

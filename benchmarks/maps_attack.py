"""Model maps and Adversarial digits: placement speed, page times, server memory; writes
benchmarks/MAPS_ATTACK.md. Measures placing one digit on each shipped map (300 training
digits, BLAS at one thread), openTSNE's own ``transform`` (``--opentsne``, refits one map:
minutes), the import cost of openTSNE (and umap from ``--umap-path``), each page's script
time in AppTest, and in headless Chromium each page cold and rerun, the server's RSS, and
screenshots at desktop and phone width into ``screenshots/``.

    MNIST_DATA=../shared/data/mnist .venv/bin/python benchmarks/maps_attack.py [--opentsne]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time

import numpy as np

import harness as h

REPO = h.REPO
REPORT = REPO / "benchmarks" / "MAPS_ATTACK.md"
SHOTS = REPO / "screenshots"
N_PLACE = 300          # training digits placed one at a time
RERUNS = 5             # reruns timed per step
DESKTOP, PHONE = (1400, 1000), (390, 844)
PHONE_SHOT_HEIGHT = 3600  # the phone screenshots' viewport: Streamlit scrolls inside the
                          # page, so a full-page shot of an 844-px viewport shows the top only
LOAD_TIMEOUT = 120_000  # ms


def ms(values) -> str:
    values = sorted(values)
    return (f"median {statistics.median(values):.1f} ms, p95 "
            f"{values[int(0.95 * (len(values) - 1))]:.1f} ms, max {values[-1]:.1f} ms")


def placement(data) -> dict:
    from threadpoolctl import threadpool_limits

    from mnist_core.artifacts.files import load_models
    from mnist_core.datasets.data import to_float
    from mnist_core.insight.embedding import load_maps

    models = load_models()
    maps, _ = load_maps(REPO / "artifacts", list(models))
    rows = np.random.default_rng(1).choice(len(data.x_train), N_PLACE, replace=False)
    x = to_float(data.x_train[rows])
    out = {}
    with threadpool_limits(1, user_api="blas"):
        for name, model in models.items():
            maps[name].place_images(model, x[:1])  # warm
            whole, only = [], []
            for img in x:
                t = time.perf_counter()
                feats = model.embedding_features(img[None])
                t1 = time.perf_counter()
                maps[name].place(feats)
                t2 = time.perf_counter()
                whole.append((t2 - t) * 1e3)
                only.append((t2 - t1) * 1e3)
            placed = maps[name].place_images(model, x)
            m = maps[name]
            own = np.mean([np.bincount(m.labels[np.argsort(((m.coords - p) ** 2).sum(1))[:15]],
                                       minlength=10).argmax() == y
                           for p, y in zip(placed, data.y_train[rows])])
            out[name] = {"features_and_place": ms(whole), "place_only": ms(only),
                         "median_total_ms": statistics.median(whole),
                         "own_cluster": f"{own:.1%}"}
    return out


def opentsne_transform(model_name: str = "lenet5") -> dict:
    from openTSNE import TSNE

    from mnist_core.insight.embedding import MAP

    with np.load(REPO / "artifacts" / f"{model_name}.map.npz", allow_pickle=False) as f:
        reduced = f["reduced"].astype(np.float32)
    t = time.perf_counter()
    emb = TSNE(perplexity=MAP.perplexity, n_jobs=MAP.n_jobs, random_state=MAP.seed,
               initialization="pca").fit(reduced)
    fit_s = time.perf_counter() - t
    times = []
    for i in range(3):
        point = reduced[i:i + 1] + np.float32(0.01)
        t = time.perf_counter()
        emb.transform(point)
        times.append((time.perf_counter() - t) * 1e3)
    return {"model": model_name, "fit_s": round(fit_s, 1), "transform_one": ms(times)}


def import_cost(module: str, path: str | None = None) -> dict:
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across exec. Read
    # by hand, not with harness.peak_rss_mb: importing the harness (psutil) would add to it.
    code = ("import re, time; t = time.perf_counter(); import " + module + "; "
            "print([time.perf_counter() - t, int(re.search(r'VmHWM:\\s+(\\d+)', "
            "open('/proc/self/status').read()).group(1)) / 1024])")
    best = min(h.run_json([sys.executable, "-c", code], {"PYTHONPATH": path} if path else None)
               for _ in range(2))
    return {"import_s": round(best[0], 2), "peak_rss_mb": round(best[1])}


def apptest_times() -> dict:
    from streamlit.testing.v1 import AppTest

    os.environ["MNIST_STUDIO_ARTIFACTS"] = str(REPO / "artifacts")
    out = {}
    for page, steps in (("app_pages/model_maps.py", [("button", "maps-another", None)]),
                        ("app_pages/attack.py", [("button", "attack-another", None),
                                                 ("segmented_control", "attack_method",
                                                  ("pgd", "fgsm")),
                                                 ("segmented_control", "attack_model",
                                                  ("cnn", "numpy")),
                                                 ("slider", "attack_strength", 0.2)]),
                        ("app_pages/confidence.py", [])):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600).run()
        t = time.perf_counter()
        at.switch_page(page).run()
        cold = (time.perf_counter() - t) * 1e3
        assert not at.exception, [e.message for e in at.exception]
        result = {"first_run_ms": round(cold)}
        for kind, key, value in steps:
            times = []
            for i in range(RERUNS):
                t = time.perf_counter()
                widget = getattr(at, kind)(key=key)
                if kind == "button":
                    widget.click().run()
                elif kind == "slider":
                    widget.set_value(round(value - 0.01 * i, 2)).run()
                else:
                    widget.set_value(value[i % 2]).run()
                times.append((time.perf_counter() - t) * 1e3)
                assert not at.exception, [e.message for e in at.exception]
            result[f"{kind} {key}"] = ms(times)
        out[page] = result
    return out


def browser() -> dict:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    proc, url = h.start_server()
    out: dict = {}
    try:
        with sync_playwright() as p:
            b = h.launch_chromium(p)
            ctx = b.new_context(viewport={"width": DESKTOP[0], "height": DESKTOP[1]})
            page = ctx.new_page()
            page.set_default_timeout(LOAD_TIMEOUT)
            t = time.perf_counter()
            page.goto(url)
            page.get_by_role("heading", name="MNIST Studio").first.wait_for()
            h.settle(page)
            out["draw_first_load_s"] = round(time.perf_counter() - t, 2)
            out["rss_after_draw_mb"] = round(h.rss_mb(proc.pid))
            for path, title, ready, rerun, shot in (
                    ("Model_maps", "Model maps", ".js-plotly-plot .main-svg", "Another test digit", "maps"),
                    ("Adversarial_digits", "Adversarial digits", "[data-testid=stMetric]",
                     "Another test digit", "attack"),
                    # No widget reruns Confidence (its tables and diagrams are fixed).
                    ("Confidence", "Honest confidence", ".js-plotly-plot .main-svg", None,
                     "confidence")):
                t = time.perf_counter()
                page.goto(f"{url}/{path}")
                page.get_by_role("heading", name=title).first.wait_for()
                page.locator(ready).first.wait_for()
                h.settle(page)
                out[f"{shot}_cold_s"] = round(time.perf_counter() - t, 2)
                times = []
                for _ in range(RERUNS if rerun else 0):
                    t = time.perf_counter()
                    page.get_by_role("button", name=rerun).click()
                    page.wait_for_timeout(50)
                    h.settle(page)
                    times.append((time.perf_counter() - t) * 1e3)
                out[f"{shot}_rerun"] = ms(times) if times else None
                out[f"rss_after_{shot}_mb"] = round(h.rss_mb(proc.pid))
                h.no_exception(page, path)
                if shot == "maps":  # click the first digit of the first map: it is shown
                    xy = page.evaluate("""() => {
                        const gd = document.querySelector('.js-plotly-plot');
                        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                        const r = gd.getBoundingClientRect(), t = gd.data[0];
                        return [r.left + xa._offset + xa.d2p(t.x[0]),
                                r.top + ya._offset + ya.d2p(t.y[0])];
                    }""")
                    page.mouse.click(*xy)
                    shown = page.get_by_text(re.compile(r"^Test digit #\d+, true label"))
                    shown.first.wait_for()
                    h.settle(page)
                    out["click_shows_digit"] = shown.first.inner_text()
                page.set_viewport_size({"width": DESKTOP[0], "height": 2000})
                h.settle(page)
                page.screenshot(path=str(SHOTS / f"{shot}-desktop.png"))
                page.set_viewport_size({"width": DESKTOP[0], "height": DESKTOP[1]})
                phone = b.new_context(viewport={"width": PHONE[0], "height": PHONE_SHOT_HEIGHT},
                                      device_scale_factor=2, is_mobile=True, has_touch=True)
                pp = phone.new_page()
                pp.set_default_timeout(LOAD_TIMEOUT)
                pp.goto(f"{url}/{path}")
                pp.get_by_role("heading", name=title).first.wait_for()
                pp.locator(ready).first.wait_for()
                h.settle(pp)
                pp.screenshot(path=str(SHOTS / f"{shot}-phone.png"))
                phone.close()
            out["rss_end_mb"] = round(h.rss_mb(proc.pid))
            b.close()
    finally:
        h.stop_server(proc)
    return out


def write_report(res: dict, command: str) -> None:
    lines = [
        h.measured(command, "openTSNE", "Streamlit", "Playwright", "chromium",
                   load_before=res["load"]),
        "",
        "## Placing one digit on a map (server, BLAS at one thread)",
        "",
        f"{N_PLACE} MNIST training digits (not in the maps), one at a time: the model's "
        "last hidden layer, then `ModelMap.place` (PCA, 15 nearest test digits, "
        "perplexity-5 Gaussian weights).",
        "",
        *h.table(["model", "features + place", "place only", "lands in its own cluster"],
                 [(name, r["features_and_place"], r["place_only"], r["own_cluster"])
                  for name, r in res["placement"].items()]),
    ]
    total = sum(r["median_total_ms"] for r in res["placement"].values())
    lines += ["", f"All maps together (what the page does for one digit): {total:.1f} ms "
                  "(sum of the medians). Goal: under 50 ms. 'Lands in its own cluster': the "
                  "15 map points nearest to where a digit lands are mostly of its label.", ""]
    if "opentsne" in res:
        o = res["opentsne"]
        lines += [f"openTSNE's own `transform` of one digit into the {o['model']} map "
                  f"(refitted in {o['fit_s']} s): {o['transform_one']}.", ""]
    lines += ["## Libraries (a fresh Python importing each)", "",
              *h.table(["import", "seconds", "peak RSS MB"],
                       [(name, r["import_s"], r["peak_rss_mb"])
                        for name, r in res["imports"].items()])]
    lines += ["", "## Pages in AppTest (the server's script time)", ""]
    for page, r in res["apptest"].items():
        lines.append(f"- `{page}`: first run after the models are loaded "
                     f"{r['first_run_ms']} ms"
                     + (" (includes reading the map files)" if "maps" in page else ""))
        for step, v in r.items():
            if step != "first_run_ms":
                lines.append(f"  - rerun, {step}: {v}")
    if "browser" in res:
        b = res["browser"]
        lines += ["", "## In Chromium (headless), server started fresh", "",
                  f"- Draw page first load {b['draw_first_load_s']} s; server RSS "
                  f"{b['rss_after_draw_mb']} MB",
                  f"- Model maps: cold {b['maps_cold_s']} s, rerun (another test digit) "
                  f"{b['maps_rerun']}; server RSS after {b['rss_after_maps_mb']} MB",
                  f"- Adversarial digits: cold {b['attack_cold_s']} s, rerun (another test "
                  f"digit) {b['attack_rerun']}; server RSS after {b['rss_after_attack_mb']} MB",
                  f"- Confidence: cold {b['confidence_cold_s']} s (no widget reruns it); "
                  f"server RSS after {b['rss_after_confidence_mb']} MB",
                  f"- Clicking a dot of the first map showed: \"{b.get('click_shows_digit')}\"",
                  f"- Server RSS at the end (phone-width visits included): "
                  f"{b['rss_end_mb']} MB (README's goal: within the smallest Cloud tier, "
                  f"~690 MB)", "",
                  "Browser times are wall time from navigation (or click) until no element "
                  "is stale and every image has loaded, on the shared 2-core machine. "
                  "Chromium runs with `--disable-gpu` (benchmarks/harness.py), so the maps' "
                  "WebGL points (4 x 10,000) are drawn in software; the server's share of a "
                  "maps rerun is the AppTest time above, the rest is the browser."]
    h.write_report(REPORT, "Model maps, Adversarial digits and Confidence: measured", lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("MNIST_DATA"))
    parser.add_argument("--opentsne", action="store_true")
    parser.add_argument("--umap-path")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    from mnist_core.datasets.data import load_dataset

    res: dict = {"load": os.getloadavg()}
    data = load_dataset(args.data)
    res["placement"] = placement(data)
    print(json.dumps(res["placement"], indent=1), flush=True)
    if args.opentsne:
        res["opentsne"] = opentsne_transform()
        print(res["opentsne"], flush=True)
    res["imports"] = {"numpy": import_cost("numpy"),
                      "mnist_core.insight.embedding (the server's part)":
                          import_cost("mnist_core.insight.embedding", str(REPO)),
                      "openTSNE": import_cost("openTSNE")}
    if args.umap_path:
        res["imports"]["umap (umap-learn 0.5.12, TensorFlow installed)"] = \
            import_cost("umap", args.umap_path)
    print(res["imports"], flush=True)
    res["apptest"] = apptest_times()
    print(json.dumps(res["apptest"], indent=1), flush=True)
    if not args.no_browser:
        res["browser"] = browser()
        print(res["browser"], flush=True)
    command = "MNIST_DATA=../shared/data/mnist .venv/bin/python benchmarks/maps_attack.py " \
        + " ".join(a for a in sys.argv[1:] if not a.startswith("--data"))
    write_report(res, command.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The plumbing every benchmark shares: the app's server, Chromium, a process's memory and
CPU, the machine line and the Markdown report. Importing it puts the repository on
``sys.path`` (at the end: a worker given ``PYTHONPATH`` of another checkout measures that
one's ``mnist_core``).

Memory is in MB (2**20 bytes), CPU and waits in seconds.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

MB = 2**20
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)]   # a top bar, then the diagonal down


# ---------------------------------------------------------------------------------------
# The app's server and Chromium
# ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(artifacts: Path | None = None, app: Path | str = "app.py",
                 timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """``streamlit run app`` on a free loopback port: ``(process, url)`` once its health
    endpoint answers; its output, in a temporary file, is in the error if it exits or stays
    silent for ``timeout`` seconds. ``artifacts``: ``MNIST_STUDIO_ARTIFACTS`` (default
    ``artifacts/``)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "MNIST_STUDIO_ARTIFACTS": str(artifacts or REPO / "artifacts")}
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would block it
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with direct.open(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    log.seek(0)
    raise RuntimeError(f"streamlit did not answer within {timeout:.0f} s:\n{log.read()}")


def stop_server(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Terminate the server and its children (a training worker), killing whatever is
    left after ``timeout`` seconds."""
    try:
        tree = [psutil.Process(proc.pid)]
        tree += tree[0].children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for p in tree:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass  # psutil reaped it first


def chromium_path() -> str | None:
    return shutil.which("chromium")


def launch_chromium(playwright):
    """Debian's Chromium through ``playwright`` (its browsers are never installed): the
    browser, or with the async API an awaitable of it."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def draw_stroke(page, canvas, points, steps: int = 15) -> None:
    """Press, drag through ``points`` (fractions of the canvas) and release."""
    box = canvas.bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def settle(page) -> None:
    """Wait until no element is stale, no spinner shows and every image has loaded."""
    page.wait_for_function("!document.querySelector('[data-stale=\"true\"]')")
    page.wait_for_function("!document.querySelector('[data-testid=\"stSpinner\"]')")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")


def no_exception(page, step: str) -> None:
    if page.get_by_test_id("stException").count():
        raise RuntimeError(f"{step}: the page shows an exception:\n"
                           + page.get_by_test_id("stException").first.inner_text())


# ---------------------------------------------------------------------------------------
# Memory and CPU
# ---------------------------------------------------------------------------------------

def rss_mb(pid: int | None = None) -> float:
    """Resident set of process ``pid`` (default this one), MB; 0.0 once it is gone."""
    try:
        return psutil.Process(pid).memory_info().rss / MB
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0.0


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """``(process MB, all its descendants MB)``: resident sets."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    return rss_mb(pid), sum(rss_mb(k.pid) for k in kids)


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of process ``pid`` (default this one), all its threads;
    0.0 once it is gone."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return t.user + t.system


def busy_cpu_seconds() -> float:
    """CPU seconds every core of this machine has spent busy (not idle or waiting on I/O)
    since boot."""
    t = psutil.cpu_times()  # Linux counts guest time inside user time already
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``), MB. psutil has no peak; and not
    ``ru_maxrss``, which a child inherits from its parent's peak before the fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> None:
    """Hand the heap's free memory back (so a measurement cannot hide in what was freed
    before it), then start the peak afresh: VmHWM := VmRSS."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")


def run_json(cmd: list[str], env: dict | None = None, cwd: Path | None = None,
             timeout: float = 3600.0) -> dict:
    """Run a worker process (``env`` added to this one's) and parse the JSON of its last
    output line; its error output in the exception if it fails or runs past ``timeout``
    seconds."""
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"worker {shlex.join(cmd)[:200]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------

def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine(*libs: str, load_before: tuple | None = None) -> str:
    """CPU, cores, memory, load average (1, 5, 15 minutes; ``load_before``: from
    ``os.getloadavg()`` at the start), Python, NumPy and ``libs`` (distribution names;
    ``"chromium"``: the browser's own version)."""
    def load(values) -> str:
        return " ".join(f"{v:.2f}" for v in values)
    names = [f"Python {platform.python_version()}", f"NumPy {version('numpy')}"]
    for lib in libs:
        if lib == "chromium":
            names.append(subprocess.run([chromium_path(), "--version"], capture_output=True,
                                        text=True, timeout=30).stdout.split(" built")[0])
        else:
            names.append(f"{lib} {version(lib)}")
    now = load(os.getloadavg())
    return (f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} CPU cores shared with "
            f"other work, {psutil.virtual_memory().total / 2**30:.0f} GiB; load average "
            + (f"{load(load_before)} before, {now} after" if load_before else f"{now} at the end")
            + f"; {', '.join(names)}")


def command(prefix: str = ".venv/bin/python", argv: list[str] | None = None) -> str:
    """How this script was run, as a shell line: ``prefix``, its path, its arguments."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    return shlex.join([*shlex.split(prefix), str(shown),
                       *(sys.argv[1:] if argv is None else argv)])


def measured(cmd: str | None, *libs: str, load_before: tuple | None = None) -> str:
    """The machine line: ``Measured by `cmd` on DATE TIME UTC: machine.`` (without ``by``
    where the report shows the command elsewhere)."""
    return (f"Measured {f'by `{cmd}` ' if cmd else ''}on "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: "
            f"{machine(*libs, load_before=load_before)}.")


def table(head: list[str], rows) -> list[str]:
    """A Markdown table's lines: ``head``, then each row's cells."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def write_report(path: Path | str, title: str, lines: list[str]) -> str:
    """``# title``, a blank line, ``lines``, written to ``path``; returns the text."""
    text = "\n".join([f"# {title}", "", *lines]).rstrip("\n") + "\n"
    Path(path).write_text(text)
    return text


def nearest_rank(values, q: float) -> float:
    """The ``q`` quantile (0-1) as the value at rank ``int(q * (n - 1))`` of the sorted
    values, NaN when there are none."""
    values = sorted(values)
    return values[int(q * (len(values) - 1))] if values else float("nan")

"""The plumbing every benchmark shares: the app's server, Chromium, a process's memory and
CPU, the machine line and the Markdown report. Memory is in MB (2**20 bytes), times in
seconds. Importing it puts the repository on ``sys.path``, last: a worker given another
checkout in ``PYTHONPATH`` measures that checkout's ``mnist_core``.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import socket
import statistics
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

# The browser the benchmarks drive, shared with the tests and the smoke test.
from deploy.browser import (CHROMIUM_ARGS, SEVEN, chromium_path,  # noqa: E402,F401
                            draw_stroke, draw_stroke_async, launch_chromium)


def start_server(artifacts: Path | str | None = None, app: Path | str = "app.py",
                 timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """``streamlit run app`` on a free loopback port: ``(process, url)`` once its health
    endpoint answers. Raises with its output if it exits or stays silent for ``timeout``
    seconds. ``artifacts``: the app's folder (default ``artifacts/``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
    raise RuntimeError(f"streamlit exited or did not answer within {timeout:.0f} s:\n{log.read()}")


def stop_server(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Terminate the server and its children (a training worker), killing whatever is
    left after ``timeout`` seconds."""
    try:
        tree = [psutil.Process(proc.pid)]
        tree += tree[0].children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for signal in ("terminate", "kill"):
        for p in tree:
            try:
                getattr(p, signal)()
            except psutil.NoSuchProcess:
                pass
        tree = psutil.wait_procs(tree, timeout=timeout)[1]
    proc.poll()  # its return code (psutil has reaped it)


def settle(page) -> None:
    """Wait until no element is stale or a skeleton (tables and charts mount lazily), no
    spinner shows and every image has loaded."""
    page.wait_for_function(
        "!document.querySelector('[data-stale=\"true\"], [data-testid=\"stSkeleton\"]')")
    page.wait_for_function("!document.querySelector('[data-testid=\"stSpinner\"]')")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")


def no_exception(page, step: str) -> None:
    if page.get_by_test_id("stException").count():
        raise RuntimeError(f"{step}: the page shows an exception:\n"
                           + page.get_by_test_id("stException").first.inner_text())


def rss_mb(pid: int | None = None) -> float:
    """Resident set of process ``pid`` (default this one), MB; 0.0 once it is gone."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
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
    """CPU seconds all cores of this machine have spent busy (not idle, not waiting on
    I/O) since boot."""
    t = psutil.cpu_times()  # Linux counts guest time inside user time already
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``), MB. psutil has no peak; and not
    ``ru_maxrss``, which a child inherits from its parent's peak before the fork."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def reset_peak_rss() -> None:
    """Hand the heap's free memory back (so a measurement cannot hide in what was freed
    before it), then start the peak afresh: VmHWM := VmRSS."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")


def run_json(cmd: list[str], env: dict | None = None, timeout: float = 3600.0):
    """Run a worker in the repository (``env`` added to this process's) for at most
    ``timeout`` seconds and parse the JSON of its last output line; its error output in the
    exception if it fails."""
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"worker {shlex.join(cmd)[:200]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values) -> dict:
    """``{"median_ms", "p90_ms", "max_ms"}`` of ``values`` (NaN when there are none)."""
    v = sorted(values)
    nan = float("nan")
    return {"median_ms": statistics.median(v) if v else nan,
            "p90_ms": v[int(0.9 * (len(v) - 1))] if v else nan, "max_ms": v[-1] if v else nan}


class Clock:
    """Wall seconds, the CPU seconds of process ``pid`` and the busy CPU seconds of the rest
    of the machine (clients, other work) since it was made: :meth:`read`."""

    def __init__(self, pid: int):
        self.pid, self.t0 = pid, time.perf_counter()
        self.cpu0, self.busy0 = cpu_seconds(pid), busy_cpu_seconds()

    def read(self) -> dict:
        cpu = cpu_seconds(self.pid) - self.cpu0
        return {"wall_s": time.perf_counter() - self.t0, "server_cpu_s": cpu,
                "others_cpu_s": busy_cpu_seconds() - self.busy0 - cpu}


def require_chromium() -> None:
    """Exit with status 2 and a message when Chromium is not installed."""
    if chromium_path() is None:
        print("error: chromium is not installed", file=sys.stderr)
        raise SystemExit(2)


def git_commit() -> str:
    """This checkout's short commit hash, ``?`` when git cannot say."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "?"


def machine(*libs: str, load_before: tuple | None = None) -> str:
    """CPU, cores, memory, load average (1, 5 and 15 minutes; ``load_before``: from
    ``os.getloadavg()`` at the start), Python, NumPy and ``libs`` (distributions, or
    ``"chromium"``: the browser's version)."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    names = [f"Python {platform.python_version()}", f"NumPy {version('numpy')}"] + [
        subprocess.run([chromium_path(), "--version"], capture_output=True, text=True,
                       timeout=30).stdout.split(" built")[0] if lib == "chromium"
        else f"{lib} {version(lib)}" for lib in libs]
    load = [" ".join(f"{v:.2f}" for v in values) for values in (load_before, os.getloadavg())
            if values]
    return (f"{platform.machine()}, {cpu}, {os.cpu_count()} CPU cores shared with other "
            f"work, {psutil.virtual_memory().total / 2**30:.0f} GiB; load average "
            + (" before, ".join(load) + " after" if load_before else f"{load[0]} at the end")
            + f"; {', '.join(names)}")


def measured(cmd: str | None, *libs: str, load_before: tuple | None = None) -> str:
    """The machine line, ``Measured by `cmd` on DATE TIME UTC: machine.`` (no ``by`` when
    the report shows the command elsewhere)."""
    return (f"Measured {f'by `{cmd}` ' if cmd else ''}on "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: "
            f"{machine(*libs, load_before=load_before)}.")


def command(prefix: str = ".venv/bin/python", argv: list[str] | None = None) -> str:
    """How this script was run, as a shell line: ``prefix``, its path, its arguments."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    return shlex.join([*shlex.split(prefix), str(shown),
                       *(sys.argv[1:] if argv is None else argv)])


def table(head: list[str], rows) -> list[str]:
    """A Markdown table's lines: ``head``, then each row's cells."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def code_block(command: str) -> list[str]:
    """``Command:`` and ``command`` in a fenced block, as report lines."""
    return ["Command:", "", "```", command, "```"]


def write_report(path: Path | str, title: str, lines: list[str]) -> str:
    """``# title``, a blank line, ``lines``, written to ``path``; returns the text."""
    text = "\n".join([f"# {title}", "", *lines]).rstrip("\n") + "\n"
    Path(path).write_text(text)
    return text

"""How a replica runs the app (the Dockerfile's CMD, and the rehearsal's replicas): Streamlit
as a child process, watched and restarted, stopped gracefully.

    python deploy/serve.py            # serves app.py on $MNIST_STUDIO_PORT (8501)
    python deploy/serve.py --check    # exit 0 when this replica's server answers (health check)

- **Restarted when it dies or freezes.** Docker's restart policy restarts a container whose
  main process exits, but not one whose server stopped answering (an "unhealthy" container
  just stays so). Here the server's ``/_stcore/health`` is asked every ``check_every_s``;
  after ``max_misses`` unanswered checks in a row the server is killed and started again,
  as it is when it exits on its own. nginx skips it meanwhile (deploy/topology.py).
- **Graceful on SIGTERM** (``docker stop``, a redeploy): the server gets SIGTERM, closes its
  websockets (the pages reconnect to another replica through nginx) and the app lets a save
  already in flight commit (ui/class_data.py waits for it at exit); past ``grace_s`` it is
  killed. Exit status 0.

Standard library only: it starts before anything else and must not fail on the app's imports.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServeConfig:
    """How a replica is watched and stopped."""

    port: int = 8501               # $MNIST_STUDIO_PORT: each replica has its own (topology.py)
    address: str = "0.0.0.0"       # $MNIST_STUDIO_ADDRESS: 127.0.0.1 in the rehearsal
    check_every_s: float = 5.0     # health check period, once the server has answered once
    check_timeout_s: float = 3.0   # an answer slower than this is a miss
    max_misses: int = 3            # misses in a row: the server is frozen, kill it (~15 s)
    start_timeout_s: float = 180.0  # a server that never answers in this long is restarted
    grace_s: float = 20.0          # SIGTERM -> SIGKILL for a server that does not stop
    restart_backoff_s: float = 1.0  # first wait before a restart; doubles to...
    max_backoff_s: float = 30.0    # ...at most this, reset once the server answers again


def config_from_env(env=os.environ) -> ServeConfig:
    return ServeConfig(port=int(env.get("MNIST_STUDIO_PORT", "8501")),
                       address=env.get("MNIST_STUDIO_ADDRESS", "0.0.0.0"))


def healthy(cfg: ServeConfig) -> bool:
    """Whether the server on ``cfg.port`` answers ``/_stcore/health`` with 200 in time."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{cfg.port}/_stcore/health",
                                    timeout=cfg.check_timeout_s) as resp:
            return resp.status == 200
    except OSError:
        return False


def log(message: str) -> None:
    print(f"serve.py[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, cfg: ServeConfig, extra: list[str]):
        self.cfg = cfg
        self.extra = extra
        self.stopping = threading.Event()
        self.child: subprocess.Popen | None = None
        self.answered = False      # whether the current server has answered a health check

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streamlit", "run", "app.py",
                f"--server.port={self.cfg.port}", f"--server.address={self.cfg.address}",
                *self.extra]

    def stop(self, signum=None, _frame=None) -> None:
        """SIGTERM/SIGINT: pass SIGTERM on; :meth:`run` waits ``grace_s`` for the exit."""
        self.stopping.set()
        if self.child is not None and self.child.poll() is None:
            log(f"signal {signum}: stopping the server (pid {self.child.pid})")
            self.child.send_signal(signal.SIGTERM)

    def watch(self, child: subprocess.Popen) -> str:
        """Until ``child`` exits, freezes or we are told to stop; returns which."""
        started = time.monotonic()
        self.answered, misses = False, 0
        while not self.stopping.is_set():
            if self.stopping.wait(self.cfg.check_every_s if self.answered else 1.0):
                break
            if child.poll() is not None:
                return "exited"
            if healthy(self.cfg):
                self.answered, misses = True, 0
                self.backoff = self.cfg.restart_backoff_s
            elif self.answered:
                misses += 1
                if misses >= self.cfg.max_misses:
                    return "frozen"
            elif time.monotonic() - started > self.cfg.start_timeout_s:
                return "frozen"
        return "stopping"

    def run(self) -> int:
        self.backoff = self.cfg.restart_backoff_s
        while not self.stopping.is_set():
            self.child = subprocess.Popen(self.command(), cwd=APP_DIR)
            log(f"server started (pid {self.child.pid}, port {self.cfg.port})")
            if self.stopping.is_set():          # a signal raced the start
                self.child.send_signal(signal.SIGTERM)
            why = self.watch(self.child)
            if why == "stopping":
                break
            if why == "frozen":
                log(f"the server stopped answering its health check: killing pid {self.child.pid}")
                self.child.kill()
            code = self.child.wait()
            log(f"the server exited ({code}); restarting in {self.backoff:.0f} s")
            if self.stopping.wait(self.backoff):
                break
            self.backoff = min(self.backoff * 2, self.cfg.max_backoff_s)
        child = self.child
        if child is not None and child.poll() is None:
            try:
                child.wait(timeout=self.cfg.grace_s)
            except subprocess.TimeoutExpired:
                log(f"the server did not stop in {self.cfg.grace_s:.0f} s: killing it")
                child.kill()
                child.wait()
        log("stopped")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="health check: exit 0 if serving")
    args, extra = parser.parse_known_args(argv)
    cfg = config_from_env()
    if args.check:
        return 0 if healthy(cfg) else 1
    sup = Supervisor(cfg, extra)
    signal.signal(signal.SIGTERM, sup.stop)
    signal.signal(signal.SIGINT, sup.stop)
    return sup.run()


if __name__ == "__main__":
    sys.exit(main())

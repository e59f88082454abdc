"""The classroom deployment rehearsed on loopback: PostgreSQL, N app replicas started as the
Dockerfile starts them (``deploy/serve.py``, the image's environment plus compose's), and
Debian's nginx from the ``http {}`` block ``deploy/topology.py`` also writes into
``deploy/nginx.conf``. Every process is started by this module, stopped by its pid, and
waited for with a bound. ``tests/test_deploy_rehearsal.py`` drives it; by hand:

    .venv/bin/python -m deploy.rehearsal      # starts it, prints the proxy's URL, Enter stops

Needs nginx and PostgreSQL's binaries (scripts/test.sh installs them with apt when missing).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa

from deploy.topology import SCHOOL, Topology, app_environment, nginx_http

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RehearsalConfig:
    """The rehearsal's size and its bounds in time."""

    replicas: int = 2                # 2 cores here: enough to fail over, few enough to start
    start_timeout_s: float = 180.0   # a replica loads every model before it answers
    stop_timeout_s: float = 30.0     # serve.py's grace is 20 s
    proxy_timeout_s: float = 10.0
    db_user: str = "studio"
    db_password: str = "p@ss%w/rd:#?"   # every character a raw URL breaks on (defect 6)


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.path.exists(p)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_run(n: int, tries: int = 200) -> int:
    """The first of ``n`` consecutive free loopback ports."""
    import random
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20000, 40000)
        try:
            socks = []
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def get(url: str, timeout: float = 5.0, cookie: str | None = None):
    """``(status, headers)`` of a GET, or ``(None, None)`` when nothing answered."""
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers
    except OSError:
        return None, None


def wait_until(what: str, check, timeout_s: float, every_s: float = 0.25):
    """Poll ``check()`` until it returns something true; its value, else RuntimeError."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)


def mnist_dir() -> str | None:
    env = os.environ.get("MNIST_DATA")
    shared = REPO.parent / "shared" / "data" / "mnist"
    return env if env else (str(shared) if shared.is_dir() else None)


class Stack:
    """PostgreSQL, the replicas and nginx, in ``workdir``."""

    def __init__(self, workdir: Path, cfg: RehearsalConfig = RehearsalConfig()):
        self.cfg = cfg
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.topo: Topology = replace(SCHOOL, replicas=cfg.replicas,
                                      app_port=free_run(cfg.replicas), proxy_port=free_port())
        self.pg_port = free_port()
        # Not under workdir: as root the cluster belongs to `postgres`, which must reach it
        # (pytest's folders are root's alone).
        self.pg_parent = Path(tempfile.mkdtemp(prefix="mnist-studio-rehearsal-"))
        os.chmod(self.pg_parent, 0o755)
        self.pg_dir = self.pg_parent / "pg"
        self.db_name = "rehearsal_" + uuid.uuid4().hex[:8]
        self.replicas: dict[int, subprocess.Popen] = {}
        self.nginx: subprocess.Popen | None = None

    # -- PostgreSQL -------------------------------------------------------------------

    def _pg(self, *args: str) -> str:
        env = {**os.environ, "PG_TEST_PORT": str(self.pg_port), "PG_TEST_DIR": str(self.pg_dir)}
        out = subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), *args], env=env,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"postgres.sh {' '.join(args)} failed:\n{out.stderr[-2000:]}")
        return out.stdout.strip()

    def start_db(self) -> None:
        admin_url = self._pg()
        if str(self.pg_port) not in admin_url:
            raise RuntimeError(f"postgres.sh answered {admin_url}")
        self.admin_url = admin_url

    def create_database(self) -> None:
        """The app's role (a password full of URL characters) and its own database."""
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            pw = self.cfg.db_password.replace("'", "''").replace("%", "%%")   # a literal
            conn.exec_driver_sql(f"CREATE ROLE {self.cfg.db_user} LOGIN PASSWORD '{pw}'")
            conn.exec_driver_sql(f'CREATE DATABASE "{self.db_name}" OWNER {self.cfg.db_user}')
        admin.dispose()

    def stop_db(self) -> None:
        self._pg("stop")

    def db_url(self) -> str:
        return sa.URL.create("postgresql+psycopg", self.cfg.db_user, self.cfg.db_password,
                             "127.0.0.1", self.pg_port, self.db_name
                             ).render_as_string(hide_password=False)

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.db_url(), connect_args={"connect_timeout": 5})

    # -- Replicas ---------------------------------------------------------------------

    def replica_env(self, i: int) -> dict[str, str]:
        """The image's environment (Dockerfile ENV, paths made local) and compose's."""
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
        env.update({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"})
        image = dict(self.topo.image_env)
        image["MNIST_STUDIO_CLASS_DB"] = str(self.dir / f"replica-{i}" / "classroom.sqlite")
        image["MNIST_DATA"] = mnist_dir() or str(self.dir / "no-mnist")
        env.update(image)
        compose = app_environment(self.topo, i)
        compose.update({"MNIST_STUDIO_DB_HOST": "127.0.0.1",
                        "MNIST_STUDIO_DB_PORT": str(self.pg_port),
                        "MNIST_STUDIO_DB_NAME": self.db_name,
                        "MNIST_STUDIO_DB_USER": self.cfg.db_user,
                        "MNIST_STUDIO_DB_PASSWORD": self.cfg.db_password,
                        "MNIST_STUDIO_TEACHER_PIN": ""})
        env.update(compose)
        env["MNIST_STUDIO_ADDRESS"] = "127.0.0.1"   # loopback only, unlike the container
        return env

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.topo.port(i)}"

    def start_replica(self, i: int) -> None:
        log = open(self.dir / f"replica-{i}.log", "ab")
        self.replicas[i] = subprocess.Popen(
            [sys.executable, str(REPO / "deploy" / "serve.py")], cwd=REPO,
            env=self.replica_env(i), stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def wait_replica(self, i: int, timeout_s: float | None = None) -> None:
        def up():
            if self.replicas[i].poll() is not None:
                raise RuntimeError(f"replica {i} exited:\n{self.log(i)[-3000:]}")
            return get(self.url(i) + "/_stcore/health")[0] == 200
        try:
            wait_until(f"replica {i} healthy", up, timeout_s or self.cfg.start_timeout_s, 0.5)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log(i)[-3000:]}") from None

    def log(self, i: int) -> str:
        path = self.dir / f"replica-{i}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def server_pid(self, i: int) -> int:
        """The pid of replica ``i``'s Streamlit server (serve.py's child)."""
        sup = self.replicas[i].pid
        children = Path(f"/proc/{sup}/task/{sup}/children").read_text().split()
        if len(children) != 1:
            raise RuntimeError(f"replica {i}: serve.py has children {children}")
        return int(children[0])

    def stop_replica(self, i: int, sig: int = signal.SIGTERM) -> int:
        """Signal serve.py and wait for it; its exit status."""
        proc = self.replicas[i]
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=self.cfg.stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"replica {i} did not stop in {self.cfg.stop_timeout_s} s")

    # -- nginx ------------------------------------------------------------------------

    def nginx_conf(self) -> str:
        """nginx.conf for loopback: the shipped ``http {}`` block, with this rehearsal's
        addresses and paths."""
        d = self.dir / "nginx"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(d / sub, 0o777)       # nginx's workers run as nobody under root
        extra = "\n".join([f"access_log {d}/access.log;",
                           f"client_body_temp_path {d}/body;", f"proxy_temp_path {d}/proxy;",
                           f"fastcgi_temp_path {d}/fastcgi;", f"uwsgi_temp_path {d}/uwsgi;",
                           f"scgi_temp_path {d}/scgi;"])
        head = (f"daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n"
                f"error_log {d}/error.log info;\nevents {{ worker_connections 512; }}\n\n")
        hosts = ["127.0.0.1"] * self.topo.replicas
        return head + nginx_http(self.topo, hosts, f"127.0.0.1:{self.topo.proxy_port}", extra)

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.topo.proxy_port}"

    def start_proxy(self) -> None:
        binary = nginx_path()
        if binary is None:
            raise RuntimeError("nginx is not installed (scripts/test.sh installs it)")
        conf = self.dir / "nginx" / "nginx.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(self.nginx_conf())
        err = self.dir / "nginx" / "stderr.log"
        with open(err, "ab") as out:
            self.nginx = subprocess.Popen([binary, "-e", str(self.dir / "nginx" / "error.log"),
                                           "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)

        def up():
            if self.nginx.poll() is not None:
                raise RuntimeError("nginx exited:\n" + err.read_text()
                                   + (self.dir / "nginx" / "error.log").read_text()[-2000:])
            return get(self.proxy + "/_stcore/health")[0] == 200
        wait_until("nginx answering", up, self.cfg.proxy_timeout_s)

    def stop_proxy(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)      # graceful: open requests finish
            try:
                self.nginx.wait(timeout=self.cfg.proxy_timeout_s)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()

    # -- All --------------------------------------------------------------------------

    def start(self) -> "Stack":
        """Everything, in order; on any failure what was started is stopped again."""
        try:
            self.start_db()
            self.create_database()
            for i in range(1, self.topo.replicas + 1):
                self.start_replica(i)
            for i in range(1, self.topo.replicas + 1):
                self.wait_replica(i)
            self.start_proxy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.stop_proxy()
        for i, proc in self.replicas.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for i in self.replicas:
            try:
                self.stop_replica(i)
            except RuntimeError:
                pass
        try:
            self.stop_db()
        except RuntimeError:
            pass
        shutil.rmtree(self.pg_parent, ignore_errors=True)


def main() -> int:
    stack = Stack(Path(tempfile.mkdtemp(prefix="rehearsal-")))
    try:
        stack.start()
        print(f"proxy: {stack.proxy}  replicas: "
              f"{[stack.url(i) for i in stack.replicas]}  db: {stack.db_url()}", flush=True)
        input("Enter stops everything. ")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

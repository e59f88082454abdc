"""The deployment's files (issue #24), without starting it: deploy/nginx.conf and
deploy/compose.yaml are what deploy/topology.py generates; the proxy config is valid for
Debian's nginx 1.22 and keeps the Host's port, the long timeout only on the websocket and its
upstream connections alive; the database URL quotes its password; the pools fit
PostgreSQL; the image has MNIST; deploy/serve.py restarts a frozen server and stops on
SIGTERM. The live proxy, replicas and faults are tests/test_deploy_rehearsal.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa
from conftest import REPO
from deploy import serve, topology
from deploy.rehearsal import Stack, free_port, get, nginx_path, wait_until
from mnist_core.classroom import class_engine

NGINX = (REPO / "deploy" / "nginx.conf").read_text()


COMPOSE = (REPO / "deploy" / "compose.yaml").read_text()


def services() -> dict[str, str]:
    """compose.yaml's services: name -> the text of its block (no YAML parser here)."""
    body = COMPOSE[COMPOSE.index("\nservices:\n"):COMPOSE.index("\nvolumes:\n")]
    parts = re.split(r"(?m)^  (\w+):\n", body)
    return dict(zip(parts[1::2], parts[2::2]))


def environment(block: str) -> dict[str, str]:
    env = block.split("    environment:\n", 1)[1]
    return dict(re.findall(r'(?m)^      (\w+): "?(.*?)"?$', env.split("\n    healthcheck:")[0]))


def image(service: str) -> str:
    return re.search(r"(?m)^    image: (\S+)", services()[service]).group(1)


def locations(conf: str) -> dict[str, str]:
    """``location`` path -> its body, from an nginx config."""
    return {m.group(1): m.group(2) for m in
            re.finditer(r"location\s+(?:=\s+)?(\S+)\s*\{(.*?)\n\s*\}", conf, re.S)}


def test_the_committed_files_are_what_the_description_generates():
    assert topology.main([]) == 0, "run: python -m deploy.topology --write"
    blocks = services()
    apps = sorted(k for k in blocks if k.startswith("app"))
    assert apps == [f"app{i}" for i in range(1, topology.SCHOOL.replicas + 1)]
    for i, name in enumerate(apps, 1):   # each replica on the port the proxy maps to it
        assert environment(blocks[name])["MNIST_STUDIO_PORT"] == str(topology.SCHOOL.port(i))
        assert f"server {name}:{topology.SCHOOL.port(i)} " in NGINX
        assert f"~:{topology.SCHOOL.port(i)}$ {i};" in NGINX


def test_the_rehearsal_runs_the_shipped_http_block(tmp_path):
    """The rehearsal's nginx.conf is the shipped one with loopback addresses and paths."""
    stack = Stack(tmp_path)
    mine = stack.nginx_conf()
    shipped = NGINX[NGINX.index("http {"):]
    for i in range(1, stack.topo.replicas + 1):
        shipped = shipped.replace(f"app{i}:{topology.SCHOOL.port(i)}",
                                  f"127.0.0.1:{stack.topo.port(i)}")
        shipped = shipped.replace(f"~:{topology.SCHOOL.port(i)}$", f"~:{stack.topo.port(i)}$")
    shipped = shipped.replace(f"listen {topology.SCHOOL.proxy_port};",
                              f"listen 127.0.0.1:{stack.topo.proxy_port};")
    body = [line for line in mine[mine.index("http {"):].splitlines()
            if not re.match(r"\s+(access_log|\w+_temp_path) ", line)]
    # The rehearsal has fewer replicas: every one of its lines is a shipped line.
    extra = [line for line in body if line not in shipped.splitlines()]
    assert not extra, extra


# -- nginx (defects 1, 5, 8) ------------------------------------------------------------

def test_the_proxy_keeps_the_port_in_host():
    """Defect 1: ``Host $host`` dropped the port; Streamlit compares the websocket's Origin
    with Host (port included) and refused every address but localhost with 403."""
    hosts = re.findall(r"proxy_set_header\s+Host\s+(\S+);", NGINX)
    assert hosts and set(hosts) == {"$http_host"}, hosts


def test_only_the_websocket_waits_long():
    """Defect 5: ``proxy_read_timeout 86400`` on every request: a frozen replica held a page
    load for a day. The websocket alone waits long; everything else moves on in seconds."""
    locs = locations(NGINX)
    assert set(locs) == {"/_stcore/stream", "/"}
    timeout = lambda body: int(re.search(r"proxy_read_timeout (\d+)s;", body).group(1))  # noqa: E731
    assert timeout(locs["/"]) <= 15 and "proxy_next_upstream error timeout;" in locs["/"]
    assert timeout(locs["/_stcore/stream"]) >= 600


def test_upstream_connections_are_kept_alive():
    """Defect 8: the Connection map sent ``close`` on every plain request, so the
    ``keepalive`` pool was never used."""
    block = re.search(r"map \$http_upgrade \$(\w+) \{(.*?)\}", NGINX, re.S)
    assert block, "no Connection map"
    rows = dict(re.findall(r'^\s*(\S+)\s+(\S+);', block.group(2), re.M))
    assert rows['""'] == '""' and rows["default"] == "upgrade"
    for body in locations(NGINX).values():
        assert f"proxy_set_header Connection ${block.group(1)};" in body
        assert "proxy_http_version 1.1;" in body
    assert len(re.findall(r"(?m)^\s+keepalive \d+;", NGINX)) == topology.SCHOOL.replicas + 1


def test_the_proxy_image_is_a_fixed_release_and_needs_no_resolve():
    """Defect 8: ``server app:8501 resolve`` needs nginx >= 1.27.3, on a floating tag."""
    assert not re.search(r"(?m)^\s*server .* resolve", NGINX)
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+(-alpine)?", image("proxy")), image("proxy")
    assert re.fullmatch(r"postgres:\d+\.\d+(-alpine)?", image("db")), image("db")


@pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed "
                    "(scripts/test.sh installs it)")
def test_debians_nginx_accepts_the_shipped_config(tmp_path):
    """The shipped file, only its replica names pointed at loopback, passes ``nginx -t`` on
    the nginx installed here (Debian 12: 1.22)."""
    conf = NGINX
    for i in range(1, topology.SCHOOL.replicas + 1):
        conf = conf.replace(f"server app{i}:", "server 127.0.0.1:")
    conf = conf.replace("events {}", f"pid {tmp_path}/nginx.pid;\nevents {{}}")
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    out = subprocess.run([nginx_path(), "-t", "-e", str(tmp_path / "error.log"), "-c", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


# -- The database (defects 6, 9) --------------------------------------------------------

def test_the_password_is_quoted_into_the_url():
    """Defect 6: compose pasted the password into the URL: ``@`` or ``%`` in it broke the
    URL ("cannot be reached"). Now the parts travel apart and the app quotes them."""
    password = "p@ss%w/rd:#?"
    env = {"MNIST_STUDIO_DB_HOST": "db", "MNIST_STUDIO_DB_PORT": "5432",
           "MNIST_STUDIO_DB_NAME": "studio", "MNIST_STUDIO_DB_USER": "studio",
           "MNIST_STUDIO_DB_PASSWORD": password}
    url = sa.make_url(class_engine.url_from_parts(env))
    assert (url.host, url.port, url.database, url.username, url.password) == \
        ("db", 5432, "studio", "studio", password)
    assert class_engine.url_from_parts({}) is None
    assert not re.search(r"://\S*\$\{", COMPOSE)         # no password pasted into a URL
    assert environment(services()["app1"])["MNIST_STUDIO_DB_PASSWORD"] == \
        "${POSTGRES_PASSWORD:-studio}"


def test_every_replicas_pool_fits_postgresql():
    """Defect 9: each replica's pool could open 15 connections (SQLAlchemy's 5 + 10):
    10 replicas exceeded PostgreSQL's default 100."""
    kw = class_engine.engine_kwargs("postgresql+psycopg://h/db")
    per = kw["pool_size"] + kw["max_overflow"]
    assert (kw["pool_size"], kw["max_overflow"]) == (topology.SCHOOL.pool_size,
                                                     topology.SCHOOL.max_overflow)
    assert 10 * per + topology.SCHOOL.pg_reserved <= topology.SCHOOL.pg_max_connections
    assert topology.SCHOOL.max_replicas() >= 10
    cfg = class_engine.config_from_env({"MNIST_STUDIO_DB_POOL_SIZE": "1",
                                        "MNIST_STUDIO_DB_MAX_OVERFLOW": "0"})
    kw = class_engine.engine_kwargs("postgresql+psycopg://h/db", cfg)
    assert (kw["pool_size"], kw["max_overflow"]) == (1, 0)


def test_a_pool_never_opens_more_connections_than_it_may(tmp_path):
    """With the pool's bound, 12 threads saving at once share its connections."""
    import threading

    from class_db import _drop, _pg_database
    url, admin = _pg_database()
    cfg = class_engine.StoreConfig(pg_pool_size=1, pg_max_overflow=1)
    engine = class_engine.make_engine(url, cfg)
    seen = []

    def work():
        with engine.connect() as conn:
            seen.append(conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            ).scalar())
            conn.exec_driver_sql("SELECT pg_sleep(0.2)")
    threads = [threading.Thread(target=work) for _ in range(12)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    engine.dispose()
    _drop(admin, url)
    assert len(seen) == 12 and max(seen) <= 2, seen


# -- The image (defect 7) ---------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` as Docker reads them: comments dropped, lines ending in
    a backslash joined."""
    text = re.sub(r"(?m)^\s*#.*\n", "", (REPO / "Dockerfile").read_text())
    text = text.replace("\\\n", "")
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip()]


def test_the_image_has_mnist_and_the_environment_the_rehearsal_uses():
    """Defect 7: Train live and Teach need MNIST; the image had none and tried to download
    it at run time (offline: failed). It is fetched, checked, when the image is built."""
    env = {}
    for ins, args in dockerfile_instructions():
        if ins == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    for key, value in topology.SCHOOL.image_env.items():
        assert env.get(key) == value, key
    runs = [args for ins, args in dockerfile_instructions() if ins == "RUN" and "mnist.npz" in args]
    assert len(runs) == 1
    code = re.fullmatch(r'python -c "(.*)"', runs[0].strip()).group(1)
    compile(code, "Dockerfile RUN", "exec")     # valid Python as Docker will run it
    assert env["MNIST_DATA"] in code and "sha256" in code
    cmd = [args for ins, args in dockerfile_instructions() if ins == "CMD"][-1]
    assert "deploy/serve.py" in cmd
    copied = [args for ins, args in dockerfile_instructions() if ins == "COPY"]
    assert any(a.startswith("deploy/serve.py") for a in copied)


# -- serve.py (defect 5's restart, graceful SIGTERM) -------------------------------------

FAKE_SERVER = textwrap.dedent("""
    import http.server, sys, signal, time
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a):
            pass
    def bye(*a):
        time.sleep(float(sys.argv[2])); sys.exit(0)    # a save finishing, then exit
    signal.signal(signal.SIGTERM, bye)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")


@pytest.fixture
def supervisor(tmp_path):
    """serve.py's Supervisor in a thread, its server a stand-in that answers health checks
    and takes ``linger`` seconds to stop on SIGTERM."""
    import threading
    script = tmp_path / "fake.py"
    script.write_text(FAKE_SERVER)
    made = []

    def start(linger: float = 0.0):
        cfg = serve.ServeConfig(port=free_port(), check_every_s=0.3, check_timeout_s=0.5,
                                max_misses=2, grace_s=3.0, restart_backoff_s=0.1)
        sup = serve.Supervisor(cfg, [])
        sup.command = lambda: [sys.executable, str(script), str(cfg.port), str(linger)]
        thread = threading.Thread(target=sup.run, daemon=True)
        thread.start()
        made.append(sup)
        wait_until("the server seen up", lambda: sup.answered, 10)
        return sup, thread
    yield start
    for sup in made:
        sup.stop()
        if sup.child is not None and sup.child.poll() is None:
            sup.child.kill()


def test_a_frozen_server_is_killed_and_started_again(supervisor):
    """Defect 5: nothing restarted a replica that stopped answering."""
    sup, _ = supervisor()
    frozen = sup.child
    os.kill(frozen.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    wait_until("a new server", lambda: sup.child is not frozen and sup.answered, 10)
    assert frozen.poll() is not None and time.monotonic() - t0 < 5


def test_a_server_that_exits_is_started_again(supervisor):
    sup, _ = supervisor()
    first = sup.child
    first.kill()
    wait_until("a new server", lambda: sup.child is not first and serve.healthy(sup.cfg), 10)


def test_sigterm_lets_the_server_finish_then_stops(supervisor):
    """SIGTERM reaches the server, which may take its time (up to grace_s) to finish."""
    sup, thread = supervisor(linger=1.0)
    child = sup.child
    t0 = time.monotonic()
    sup.stop(signal.SIGTERM)
    thread.join(10)
    assert not thread.is_alive() and child.returncode == 0     # exited on its own
    assert 0.9 < time.monotonic() - t0 < 3


def test_the_health_check_command(tmp_path):
    port = free_port()
    env = {**os.environ, "MNIST_STUDIO_PORT": str(port)}
    check = [sys.executable, str(REPO / "deploy" / "serve.py"), "--check"]
    assert subprocess.run(check, env=env, timeout=30).returncode == 1     # nothing there
    script = tmp_path / "fake.py"
    script.write_text(FAKE_SERVER)
    proc = subprocess.Popen([sys.executable, str(script), str(port), "0"])
    try:
        wait_until("up", lambda: get(f"http://127.0.0.1:{port}/")[0] == 200, 10)
        assert subprocess.run(check, env=env, timeout=30).returncode == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_save_in_flight_holds_the_exit():
    """ui.class_data.SAVES: the exit waits (bounded) for saves still committing."""
    import threading

    from ui.class_data import SavesInFlight
    saves = SavesInFlight()
    assert saves.wait(0.01)
    done = threading.Event()

    def save():
        with saves:
            done.wait(5)
    t = threading.Thread(target=save)
    t.start()
    wait_until("in flight", lambda: saves.count == 1, 5)
    assert not saves.wait(0.1)                      # still saving: not yet
    threading.Timer(0.2, done.set).start()
    assert saves.wait(5) and saves.count == 0
    t.join(5)

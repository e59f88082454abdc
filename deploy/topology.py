"""The classroom deployment, described once: N app replicas behind nginx, one PostgreSQL.

``deploy/nginx.conf`` and ``deploy/compose.yaml`` are generated from :data:`SCHOOL` by

    .venv/bin/python -m deploy.topology --write

and ``tests/test_deploy_config.py`` fails when the committed files differ from what this
module generates; the loopback rehearsal (``deploy/rehearsal.py``) renders the same
``http {}`` block with loopback addresses. Nothing here imports the app.

How a browser stays on one replica (nginx open source, 1.22 and later, no ``resolve`` and no
``sticky``): replica ``i`` listens on its own port (``app_port + i - 1``), so the address
nginx actually used (``$upstream_addr``, the last one when it retried) names the replica.
The response sets the cookie ``studio_route=i`` and the header ``X-Studio-Replica: i`` from
it; a request carrying the cookie goes to upstream ``studio_i``, which is replica ``i`` with
every other replica as a backup. When ``i`` is dead the backup that answers rewrites the
cookie, so the browser's page requests, uploads and websocket all move together and stay
where they moved when ``i`` comes back (a hash of the cookie would send them back).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Topology:
    """One deployment: how many replicas, their ports and the proxy's limits."""

    replicas: int = 3                # app replicas (compose services app1..appN)
    app_port: int = 8501             # replica 1's port; replica i listens on app_port + i - 1
    proxy_port: int = 80             # nginx's port inside its container
    published_port: int = 8080       # the port a school opens (http://server:8080)
    cookie: str = "studio_route"     # names the replica a browser is pinned to
    replica_header: str = "X-Studio-Replica"   # the replica that answered, on every response
    stream_path: str = "/_stcore/stream"       # Streamlit's websocket: the one long request
    stream_timeout_s: int = 3600     # an idle websocket is closed after this (the page
                                     # reconnects to the same replica and session)
    request_timeout_s: int = 10      # any other request: a frozen replica is skipped after
                                     # this, not after a day
    connect_timeout_s: int = 2       # a replica that does not accept in 2 s is skipped
    fail_timeout_s: int = 10         # a replica that failed is left out for this long
    keepalive: int = 16              # idle connections nginx keeps open to each group
    max_body_mb: int = 25            # the app's upload limit is 20 MB a file; room for the form
    nginx_image: str = "nginx:1.26.3-alpine"    # a fixed release: the config needs >= 1.22
    postgres_image: str = "postgres:16.6-alpine"
    pg_max_connections: int = 100    # PostgreSQL's default
    pg_reserved: int = 10            # connections kept for psql, backups, migrations
    pool_size: int = 2               # each replica's kept connections (MNIST_STUDIO_DB_POOL_SIZE)
    max_overflow: int = 3            # and extra ones under load (MNIST_STUDIO_DB_MAX_OVERFLOW)
    memory_limit: str = "1g"         # per replica (benchmarks/CAPACITY.md: ~0.5 GB used)
    image_env: dict = field(default_factory=lambda: {   # the Dockerfile's ENV, as the app sees it
        "MNIST_STUDIO_CLASS_DB": "/home/studio/data/classroom.sqlite",
        "MNIST_DATA": "/opt/mnist",
    })

    def port(self, i: int) -> int:
        """Replica ``i``'s port (1-based)."""
        return self.app_port + i - 1

    @property
    def connections_per_replica(self) -> int:
        return self.pool_size + self.max_overflow

    def max_replicas(self) -> int:
        """How many replicas PostgreSQL's connection limit allows."""
        return (self.pg_max_connections - self.pg_reserved) // self.connections_per_replica


SCHOOL = Topology()


# ---------------------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------------------

def _map(why: list[str], source: str, target: str, default: str,
         entries: list[tuple[str, str]]) -> list[str]:
    """An nginx ``map`` block inside ``http {}``, its comment lines ``why`` above it."""
    return [*(f"    # {line}" for line in why), f"    map {source} {target} {{",
            f"        default {default};", *(f"        {k} {v};" for k, v in entries), "    }"]


def nginx_http(topo: Topology, hosts: list[str], listen: str, extra: str = "") -> str:
    """The ``http {}`` block: ``hosts[i-1]`` is replica i's host (its port from ``topo``),
    ``listen`` nginx's listen address; ``extra`` lines go first (paths for a rehearsal)."""
    n = len(hosts)
    servers = [f"{h}:{topo.port(i + 1)}" for i, h in enumerate(hosts)]
    fail = f"max_fails=1 fail_timeout={topo.fail_timeout_s}s"
    out = ["http {"]
    out += [f"    {line}" for line in extra.splitlines() if line.strip()]
    out += _map(["The replica that answered, from the port nginx used (the last one when it",
                 "retried): replica i listens on its own port."],
                "$upstream_addr", "$studio_served", '""',
                [(f"~:{topo.port(i + 1)}$", str(i + 1)) for i in range(n)])
    out += _map(["A browser pinned to replica i goes to upstream studio_i; anyone else to the",
                 "least busy replica."],
                f"$cookie_{topo.cookie}", "$studio_group", "studio",
                [(f'"{i + 1}"', f"studio_{i + 1}") for i in range(n)])
    out += _map(["Websocket upgrades say so; every other request sends no Connection header, so",
                 "the upstream keepalive connections are reused."],
                "$http_upgrade", "$studio_connection", "upgrade", [('""     ', '""')])
    out += [
        "",
        "    upstream studio {",
        "        least_conn;",
    ]
    out += [f"        server {s} {fail};" for s in servers]
    out += [f"        keepalive {topo.keepalive};", "    }"]
    for i in range(n):
        # No server of a pinned group is ever marked failed (max_fails=0): a browser sent
        # here by a backup's cookie must reach replica i even if i failed a moment ago
        # and is back (marked failed, i would be left out for fail_timeout and the page's
        # websocket refused with a 502 until then, while its pings went through). A dead
        # i costs a pinned browser one refused connection (at most connect_timeout_s),
        # then the backup's answer moves it.
        out += [f"    upstream studio_{i + 1} {{", f"        server {servers[i]} max_fails=0;"]
        out += [f"        server {s} backup max_fails=0;" for j, s in enumerate(servers)
                if j != i]
        out += [f"        keepalive {topo.keepalive};", "    }"]
    common = [
        "proxy_pass http://$studio_group;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $studio_connection;",
        "# The port stays in Host: Streamlit compares the websocket's Origin with it.",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        f"proxy_connect_timeout {topo.connect_timeout_s}s;",
        "# A dead or frozen replica: the next one answers (never a POST twice).",
        "proxy_next_upstream error timeout;",
        f'add_header Set-Cookie "{topo.cookie}=$studio_served; Path=/; HttpOnly; '
        f'SameSite=Lax" always;',
        f"add_header {topo.replica_header} $studio_served always;",
    ]
    out += [
        "",
        "    server {",
        f"        listen {listen};",
        f"        client_max_body_size {topo.max_body_mb}m;",
        "",
        "        # Streamlit's websocket: the only request that may stay open for long.",
        f"        location = {topo.stream_path} {{",
    ]
    out += [f"            {line}" for line in common]
    out += [f"            proxy_read_timeout {topo.stream_timeout_s}s;",
            f"            proxy_send_timeout {topo.stream_timeout_s}s;",
            "        }", "", "        location / {"]
    out += [f"            {line}" for line in common]
    out += [f"            proxy_read_timeout {topo.request_timeout_s}s;",
            f"            proxy_send_timeout {topo.request_timeout_s}s;",
            "        }", "    }", "}"]
    return "\n".join(out) + "\n"


NGINX_HEADER = """\
# nginx in front of the app replicas (deploy/compose.yaml). GENERATED by
# `python -m deploy.topology --write` from deploy/topology.py: edit that, not this.
#
# Sticky sessions by a cookie naming the replica that actually answered (not by client
# IP: a whole class behind one school router shares an IP). Valid for nginx 1.22 and later
# (open source: no `resolve`, no `sticky`); nginx resolves the replicas' names when it
# starts, which is after they are healthy (compose's depends_on).
"""


def nginx_conf(topo: Topology = SCHOOL) -> str:
    """deploy/nginx.conf: replicas ``app1``..``appN`` on the compose network."""
    hosts = [f"app{i + 1}" for i in range(topo.replicas)]
    return (NGINX_HEADER + "events {}\n\n"
            + nginx_http(topo, hosts, str(topo.proxy_port)))


# ---------------------------------------------------------------------------------------
# compose
# ---------------------------------------------------------------------------------------

COMPOSE_HEADER = """\
# A classroom server: {n} app replicas behind nginx with sticky sessions, and PostgreSQL
# for the data the app keeps. GENERATED by `python -m deploy.topology --write` from
# deploy/topology.py (edit that, not this). From the repository root:
#   POSTGRES_PASSWORD='...' docker compose -f deploy/compose.yaml up --build
# then open http://SERVER:{published}. Capacity: README's "Capacity plan".
"""


def app_environment(topo: Topology, i: int) -> dict[str, str]:
    """Replica ``i``'s environment beyond the image's: its port and the database's parts
    (the password is never pasted into a URL: the app quotes it)."""
    return {
        "MNIST_STUDIO_PORT": str(topo.port(i)),
        "MNIST_STUDIO_DB_HOST": "db",
        "MNIST_STUDIO_DB_PORT": "5432",
        "MNIST_STUDIO_DB_NAME": "studio",
        "MNIST_STUDIO_DB_USER": "studio",
        "MNIST_STUDIO_DB_PASSWORD": "${POSTGRES_PASSWORD:-studio}",
        "MNIST_STUDIO_DB_POOL_SIZE": str(topo.pool_size),
        "MNIST_STUDIO_DB_MAX_OVERFLOW": str(topo.max_overflow),
        "MNIST_STUDIO_REPLICA": str(i),
        "MNIST_STUDIO_TEACHER_PIN": "${TEACHER_PIN:-}",
        # nginx is another container on compose's private network: its X-Forwarded-For
        # names each learner, for the per-client limit on wrong PINs (ui/class_data.py).
        "MNIST_STUDIO_TRUSTED_PROXIES": "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16",
    }


def _q(value: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def compose_yaml(topo: Topology = SCHOOL) -> str:
    n = topo.replicas
    out = [COMPOSE_HEADER.format(n=n, published=topo.published_port).rstrip("\n"), "services:"]
    for i in range(1, n + 1):
        out += [
            f"  app{i}:",
            "    build: ..",
            "    image: mnist-studio       # built once, every replica runs it",
            "    # deploy/serve.py restarts Streamlit itself when it dies or stops answering",
            "    # its health check; the restart policy covers serve.py.",
            "    restart: unless-stopped",
            "    stop_grace_period: 30s     # serve.py lets saves in flight finish",
            "    mem_limit: " + topo.memory_limit,
            "    environment:",
        ]
        out += [f"      {k}: {_q(v)}" for k, v in app_environment(topo, i).items()]
        out += [
            "    healthcheck:",
            "      test: [\"CMD\", \"python\", \"deploy/serve.py\", \"--check\"]",
            "      interval: 10s",
            "      timeout: 5s",
            "      start_period: 90s",
            "      retries: 3",
            "    depends_on:",
            "      db:",
            "        condition: service_healthy",
        ]
    out += [
        "",
        "  proxy:",
        f"    image: {topo.nginx_image}",
        "    ports:",
        f"      - \"{topo.published_port}:{topo.proxy_port}\"",
        "    volumes:",
        "      - ./nginx.conf:/etc/nginx/nginx.conf:ro",
        "    depends_on:",
    ]
    out += [f"      app{i}:\n        condition: service_healthy" for i in range(1, n + 1)]
    out += [
        "    restart: unless-stopped",
        "",
        "  db:",
        f"    image: {topo.postgres_image}",
        "    environment:",
        "      POSTGRES_USER: studio",
        "      POSTGRES_DB: studio",
        "      POSTGRES_PASSWORD: \"${POSTGRES_PASSWORD:-studio}\"",
        f"    command: [\"postgres\", \"-c\", \"max_connections={topo.pg_max_connections}\"]",
        "    volumes:",
        "      - db-data:/var/lib/postgresql/data",
        "    healthcheck:",
        "      test: [\"CMD-SHELL\", \"pg_isready -U studio -d studio\"]",
        "      interval: 5s",
        "      timeout: 3s",
        "      retries: 10",
        "    restart: unless-stopped",
        "",
        "volumes:",
        "  db-data:",
    ]
    return "\n".join(out) + "\n"


GENERATED = {"nginx.conf": nginx_conf, "compose.yaml": compose_yaml}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write or check deploy/nginx.conf and "
                                                 "deploy/compose.yaml from deploy/topology.py.")
    parser.add_argument("--write", action="store_true", help="write the files")
    args = parser.parse_args(argv)
    stale = []
    for name, render in GENERATED.items():
        text = render(SCHOOL)
        path = HERE / name
        if args.write:
            path.write_text(text)
        elif not path.is_file() or path.read_text() != text:
            stale.append(name)
    if stale:
        print(f"stale: {', '.join(stale)} (run python -m deploy.topology --write)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

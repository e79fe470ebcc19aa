"""Starting the dashboard: a loopback address, a free port, a fresh token, the URL printed.

1. The host defaults to 127.0.0.1. Any address that is not loopback serves the project to the
   network, so it needs ``allow_remote=True`` (``--allow-remote``) and prints a warning.
2. The socket is bound here, before the server starts (port 0 asks the system for a free one),
   so the printed URL is the one listening, with no race between choosing and binding.
3. A random token is drawn per start (`security.new_token`) and printed in the URL.
4. `serve` runs in the foreground until Ctrl-C; `start` runs the same server on a background
   thread and returns a handle with its URL and ``stop()`` (tests, notebooks).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from interplab.dashboard.security import new_token
from interplab.dashboard.sources import DashboardError
from interplab.store import Project

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """Returns whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """Returns a listening socket on ``host:port`` (port 0: a free one)."""
    if not 0 <= port <= 65535:
        raise DashboardError(f"--port is 0 (any free port) to 65535, got {port}")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise DashboardError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int, token: str) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
    return f"http://{shown}:{port}/?token={token}"


@dataclass
class Running:
    """A dashboard serving on a background thread."""

    url: str
    token: str
    port: int
    _server: object
    _thread: threading.Thread

    @property
    def base(self) -> str:
        """The address without the token."""
        return self.url.split("/?token=")[0]

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the server and waits for its thread."""
        self._server.should_exit = True  # type: ignore[attr-defined]
        self._thread.join(timeout)


def _server(
    project: Project | str | Path | None,
    host: str,
    port: int,
    allow_remote: bool,
    token: str | None,
):
    import uvicorn

    from interplab.dashboard.app import create_app

    if not is_loopback(host) and not allow_remote:
        raise DashboardError(
            f"--host {host} would serve this project to the network; pass --allow-remote to do "
            "that on purpose, or leave --host at 127.0.0.1"
        )
    opened = project if isinstance(project, Project) else Project.open(project)
    token = token or new_token()
    app = create_app(opened, token)
    sock = bind(host, port)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    return server, sock, _url(host, sock.getsockname()[1], token), token, opened


def start(
    project: Project | str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    token: str | None = None,
    wait_s: float = 10.0,
) -> Running:
    """Starts the dashboard on a background thread and returns it once it answers."""
    server, sock, url, token, _ = _server(project, host, port, allow_remote, token)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="interplab-dashboard", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + wait_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise DashboardError("the dashboard did not start; see the messages above")
        time.sleep(0.01)
    return Running(url, token, sock.getsockname()[1], server, thread)


def serve(
    project: Project | str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    open_browser: bool = True,
    echo: Callable[[str], None] = print,
) -> None:
    """Serves the dashboard in the foreground until interrupted, printing its URL."""
    server, sock, url, _, opened = _server(project, host, port, allow_remote, None)
    if not is_loopback(host):
        echo(
            f"WARNING: serving {opened.root} to the network on {host}; anyone who can reach this "
            "port and learns the token can read the project and write to its log"
        )
    echo(f"interplab dashboard for {opened.root} ({opened.count_runs()} runs)")
    echo(f"open {url}")
    echo("Ctrl-C stops it")
    if open_browser:
        threading.Thread(target=_open_when_up, args=(server, url), daemon=True).start()
    server.run(sockets=[sock])


def _open_when_up(server: object, url: str) -> None:
    for _ in range(500):
        if getattr(server, "started", False):
            webbrowser.open(url)
            return
        time.sleep(0.01)


__all__ = ["Running", "bind", "is_loopback", "serve", "start"]

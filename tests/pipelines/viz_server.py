"""Start ``kedro viz run`` on 127.0.0.1 in a project for a test, and always stop it again.

kedro-viz starts its web server in a second (spawned) process and asks PyPI for its latest
version at start-up and on ``/api/version``. The server therefore runs in its own process
group, which is killed as a whole, and with an unreachable proxy for everything that is not
this machine, so a test never reaches the network (and never waits for it).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
# Port 9 (discard) on this machine: nothing listens, so a proxied request fails at once.
OFFLINE_ENV = {
    "HTTP_PROXY": f"http://{HOST}:9",
    "HTTPS_PROXY": f"http://{HOST}:9",
    "http_proxy": f"http://{HOST}:9",
    "https_proxy": f"http://{HOST}:9",
    "NO_PROXY": f"{HOST},localhost",
    "no_proxy": f"{HOST},localhost",
}
_RUNNING_AT = re.compile(r"http://127\.0\.0\.1:(\d+)/")


def free_port() -> int:
    """A port nobody listens on, below 49152: kedro-viz refuses ports in the ephemeral range."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randint(20000, 45000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free TCP port between 20000 and 45000 on {HOST}")


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment with every off-machine request sent to a dead proxy."""
    return {**os.environ, **OFFLINE_ENV, **extra}


def http_get(url: str, timeout: float = 30.0) -> bytes:
    # An explicit empty ProxyHandler: requests to 127.0.0.1 never go through a proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.read()


@dataclass
class VizServer:
    url: str
    log: Path

    def api(self, path: str) -> Any:
        """GET ``/api/<path>`` as JSON."""
        return json.loads(http_get(f"{self.url}/api/{path.lstrip('/')}"))


def stop_process_group(process: subprocess.Popen) -> None:
    """Terminate the whole process group we started (the CLI and its server child)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            process.poll()  # reap the CLI, or its zombie keeps the group "alive"
            if not _group_alive(process.pid):
                return
            time.sleep(0.1)
    process.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies, which nobody may reap here, do not count)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[str]:
    """Command lines of the live (not zombie) processes of group ``pgid``, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may contain spaces, so split after its ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
        except (OSError, IndexError, ValueError):
            continue
    return members


@contextmanager
def kedro_viz(project: Path, env: str = "demo", timeout_s: float = 120.0) -> Iterator[VizServer]:
    """``kedro viz run`` (no browser, no autoreload) in ``project``; yields once ``/api/main`` answers."""
    port = free_port()
    log = project / f"kedro_viz_{port}.log"
    command = [sys.executable, "-m", "kedro", "viz", "run", "--host", HOST, "--port", str(port), "--no-browser", "--env", env]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=project, stdout=out, stderr=subprocess.STDOUT, env=offline_env(), start_new_session=True
        )
    try:
        url = _wait_until_up(process, port, log, timeout_s)
        yield VizServer(url=url, log=log)
    finally:
        stop_process_group(process)


def _wait_until_up(process: subprocess.Popen, port: int, log: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # The CLI waits for its server child, so it only exits early when start-up failed.
        if process.poll() is not None:
            raise AssertionError(f"kedro viz run exited with code {process.returncode}:\n{log.read_text()[-4000:]}")
        # kedro-viz moves to the next port if ours was taken in the meantime; it prints the one it uses.
        announced = _RUNNING_AT.search(log.read_text())
        url = f"http://{HOST}:{announced.group(1) if announced else port}"
        try:
            http_get(f"{url}/api/main", timeout=5)
            return url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"kedro viz run did not answer on {HOST}:{port} within {timeout_s:.0f} s:\n{log.read_text()[-4000:]}")

"""What the distributed tests share: the Ray cluster (one head started by ``ray start`` with four
logical CPUs, per test session, i.e. per xdist worker), two actors holding the tiny Llama (per
module), and one torch thread in every test (as the workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def cluster():
    """A Ray head on this machine started by ``ray start`` (four logical CPUs: the shared
    two-worker backend plus one more pair of worker processes);
    the driver connects to its address. Stopped with the process that started it."""
    ray = pytest.importorskip("ray")
    port = _free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)]),
    }
    os.environ["RAY_AUTH_MODE"] = "disabled"
    head = subprocess.Popen(
        [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            f"--port={port}", "--num-cpus=4", "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            ray.init(address=address, log_to_driver=False)
            break
        except Exception:
            if time.monotonic() > deadline or head.poll() is not None:
                head.kill()
                raise
            time.sleep(1)
    try:
        yield address
    finally:
        ray.shutdown()
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread, as the workers run: equal kernels, equal bits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def llama_workers(cluster):
    """Two Ray actors holding the tiny Llama (built by ``factories:tiny_llama``), shared by a
    module's tests that leave them alive."""
    from interplab.distributed import ModelSpec, RayBackend

    from helpers import tiny_model

    backend = RayBackend(
        ModelSpec.of(tiny_model("llama"), "factories:tiny_llama"), address=cluster, workers=2
    )
    yield backend
    backend.close()

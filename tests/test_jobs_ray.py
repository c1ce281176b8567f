"""The Ray executor of claims.framework.jobs against a local Ray instance on loopback: same results
as the serial executor, failures raised, finished jobs cached. Skipped when ray is not installed
(the optional ``distributed`` extra)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from claims.framework.jobs import JobCache, run_jobs
from tests.test_jobs import jobs_of

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.quick


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _without_pid(results):
    return [{k: v for k, v in r.items() if k != "pid"} for r in results]


def test_local_ray_instance_gives_the_serial_results(tmp_path):
    jobs = jobs_of("square", range(5))
    serial = run_jobs(jobs, JobCache(tmp_path / "serial", version="v"), progress=None)
    on_ray = run_jobs(jobs, JobCache(tmp_path / "ray", version="v"), executor="ray",
                      max_workers=2, progress=None)
    assert _without_pid(on_ray) == _without_pid(serial)
    assert os.getpid() not in {r["pid"] for r in on_ray}
    assert not ray.is_initialized()  # the instance it started is stopped again


def test_ray_job_failure_is_the_jobs_exception_and_finished_jobs_stay_cached(tmp_path):
    cache = JobCache(tmp_path, version="v")
    jobs = jobs_of("fail_on_three", [1, 3])
    with pytest.raises(RuntimeError, match="job three fails"):
        run_jobs(jobs, cache, executor="ray", max_workers=2, progress=None)
    assert cache.get(jobs[0]) == {"value": 1} and cache.get(jobs[1]) is None


@pytest.fixture
def ray_head():
    """A Ray head node started by `ray start` on 127.0.0.1 (a cluster of one, over loopback)."""
    exe = shutil.which("ray", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the ray command line is not installed next to this python")
    port = _free_port()
    # Ray's sockets live under its temp dir, and a Unix socket path must stay under ~107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    start = [exe, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
             f"--temp-dir={temp_dir}"]
    subprocess.run(start, check=True, capture_output=True, env=env, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([exe, "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_cluster_at_an_address_gives_the_serial_results(ray_head, tmp_path):
    jobs = jobs_of("square", range(4))
    serial = run_jobs(jobs, JobCache(tmp_path / "serial", version="v"), progress=None)
    on_cluster = run_jobs(jobs, JobCache(tmp_path / "cluster", version="v"), executor="ray",
                          address=ray_head, progress=None)
    assert _without_pid(on_cluster) == _without_pid(serial)

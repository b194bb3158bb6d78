"""Warm start, end to end without Snakemake: a server forks each job script; the job sees an ordinary process."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from lmsweep import warm

SCRIPTS = Path(warm.__file__).resolve().parents[1]
# The server as the Snakefile starts it (socket, parent pid, hide bitsandbytes), preloading only json.
SERVE = (
    "import sys; from lmsweep.warm import serve; "
    "serve(sys.argv[1], int(sys.argv[2]), preload=('json',), hide_bitsandbytes=sys.argv[3] == '1')"
)
JOB = textwrap.dedent(
    """
    import json, os, sys
    from lmsweep.warm import delegate

    delegate()
    print("to stderr", file=sys.stderr)
    if "crash" in sys.argv:
        raise RuntimeError("the job crashed")
    if "sleep" in sys.argv:
        print(os.getpid(), flush=True)
        import time
        time.sleep(60)
    print(json.dumps({
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "cwd": os.getcwd(),
        "argv": sys.argv[1:],
        "client_var": os.environ.get("CLIENT_VAR"),
        "server_var": os.environ.get("SERVER_VAR"),
        "inside": os.environ.get("LMSWEEP_WARM_CHILD"),
        "bitsandbytes_hidden": "bitsandbytes" in sys.modules and sys.modules["bitsandbytes"] is None,
    }))
    sys.exit(3)
    """
)


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphan's zombie may wait long for its reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def start_server(socket_path, parent: int, cwd, hide_bitsandbytes="1"):
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(socket_path), str(parent), hide_bitsandbytes],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(SCRIPTS), "SERVER_VAR": "server only"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    if not wait_for(lambda: socket_path.exists() or proc.poll() is not None):
        proc.kill()
        pytest.fail("the warm server did not come up")
    assert proc.poll() is None, proc.stderr.read().decode()
    return proc


@pytest.fixture
def socket_path(tmp_path):
    # Unix socket paths are limited to about 100 bytes: keep it short, whatever the test's tmp_path.
    folder = Path(tempfile.mkdtemp(prefix="lmsweep-test-"))
    yield folder / "s"
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()


@pytest.fixture
def server(socket_path, tmp_path):
    proc = start_server(socket_path, os.getpid(), cwd=tmp_path)
    yield proc, socket_path
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(JOB)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return path, workdir


def client_env(socket_path=None, **extra):
    env = {k: v for k, v in os.environ.items() if k not in (warm.SOCKET_ENV, warm.INSIDE_ENV, "SERVER_VAR")}
    env.update({"PYTHONPATH": str(SCRIPTS), "CLIENT_VAR": "from the client", **extra})
    if socket_path is not None:
        env[warm.SOCKET_ENV] = str(socket_path)
    return env


def run_job(job, *args, socket_path=None):
    script, workdir = job
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=workdir, env=client_env(socket_path),
        capture_output=True, text=True, timeout=60,
    )


def test_the_job_runs_in_a_fork_of_the_server_and_exits_like_itself(server, job):
    proc, socket_path = server
    result = run_job(job, "a", "b c", socket_path=socket_path)
    assert result.returncode == 3, result.stderr
    out = json.loads(result.stdout)
    assert out["ppid"] == proc.pid  # forked by the server, not run by the client
    assert out["argv"] == ["a", "b c"]
    assert out["cwd"] == str(job[1])  # the client's working directory
    assert out["client_var"] == "from the client"  # the client's environment ...
    assert out["server_var"] is None  # ... and only that
    assert out["inside"] == "1"
    assert out["bitsandbytes_hidden"]
    assert result.stderr == "to stderr\n"


def test_bitsandbytes_stays_visible_when_the_study_loads_4bit(socket_path, job, tmp_path):
    proc = start_server(socket_path, os.getpid(), cwd=tmp_path, hide_bitsandbytes="0")
    try:
        result = run_job(job, socket_path=socket_path)
        assert result.returncode == 3, result.stderr
        assert json.loads(result.stdout)["bitsandbytes_hidden"] is False
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_same_job_run_cold_gives_the_same_output_but_its_own_process(job):
    result = run_job(job, "a", "b c")
    assert result.returncode == 3, result.stderr
    out = json.loads(result.stdout)
    assert out["ppid"] == os.getpid()
    assert out["inside"] is None and out["cwd"] == str(job[1]) and out["argv"] == ["a", "b c"]


def test_an_exception_in_the_job_exits_1_with_its_traceback(server, job):
    result = run_job(job, "crash", socket_path=server[1])
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: the job crashed" in result.stderr
    assert result.stdout == ""


def test_sys_exit_with_a_message(server, tmp_path):
    script = tmp_path / "message.py"
    script.write_text("import sys\nfrom lmsweep.warm import delegate\ndelegate()\nsys.exit('no predictions')\n")
    result = subprocess.run(
        [sys.executable, str(script)], env=client_env(server[1]), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr == "no predictions\n"


def test_the_server_serves_many_jobs(server, job):
    pids = set()
    for i in range(3):
        result = run_job(job, str(i), socket_path=server[1])
        assert result.returncode == 3
        pids.add(json.loads(result.stdout)["pid"])
    assert len(pids) == 3


@pytest.mark.parametrize("stop", ["kill", "terminate"])
def test_a_stopped_client_stops_its_fork(server, job, stop):
    """SIGKILL: the fork sees the client's socket close; SIGTERM: the client forwards it."""
    script, workdir = job
    client = subprocess.Popen(
        [sys.executable, str(script), "sleep"], cwd=workdir, env=client_env(server[1]),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        child = int(client.stdout.readline())
        assert child != client.pid and is_running(child)
        time.sleep(0.3)  # the client installs its signal forwarding right after the fork's pid arrives
        getattr(client, stop)()
        assert client.wait(timeout=10) != 0
        assert wait_for(lambda: not is_running(child), timeout=10)
    finally:
        client.kill()
        client.wait(timeout=10)
        if is_running(child):
            os.kill(child, signal.SIGKILL)


def test_delegate_returns_without_a_server(monkeypatch, tmp_path):
    monkeypatch.delenv(warm.SOCKET_ENV, raising=False)
    monkeypatch.delenv(warm.INSIDE_ENV, raising=False)
    assert warm.delegate() is None
    monkeypatch.setenv(warm.SOCKET_ENV, str(tmp_path / "no-such-socket"))
    start = time.monotonic()
    assert warm.delegate() is None
    assert time.monotonic() - start < 1


def test_a_socket_left_by_a_dead_server_means_a_cold_run(socket_path, job, tmp_path):
    proc = start_server(socket_path, os.getpid(), cwd=tmp_path)
    proc.kill()
    proc.wait(timeout=10)
    assert socket_path.exists()  # SIGKILL leaves the socket file behind
    result = run_job(job, socket_path=socket_path)
    assert result.returncode == 3, result.stderr
    out = json.loads(result.stdout)
    assert out["ppid"] == os.getpid() and out["inside"] is None


def test_delegate_returns_inside_the_fork(monkeypatch, server):
    # In the fork the job's own delegate() call must not send the job to the server again.
    monkeypatch.setenv(warm.SOCKET_ENV, str(server[1]))
    monkeypatch.setenv(warm.INSIDE_ENV, "1")
    assert warm.delegate() is None


def test_the_server_exits_when_its_parent_does(socket_path):
    launcher = subprocess.Popen(
        [sys.executable, "-c",
         "import os, subprocess, sys, time\n"
         f"p = subprocess.Popen([sys.executable, '-c', {SERVE!r}, {str(socket_path)!r}, str(os.getpid()), '1'])\n"
         "print(p.pid, flush=True)\n"
         "time.sleep(120)\n"],
        env={**os.environ, "PYTHONPATH": str(SCRIPTS)}, stdout=subprocess.PIPE, text=True,
    )
    server_pid = int(launcher.stdout.readline())
    try:
        assert wait_for(socket_path.exists), "the warm server did not come up"
        assert is_running(server_pid)
        launcher.kill()
        launcher.wait(timeout=10)
        assert wait_for(lambda: not is_running(server_pid), timeout=15)
        assert not socket_path.exists()  # it cleaned up after itself
    finally:
        launcher.kill()
        launcher.wait(timeout=10)
        if is_running(server_pid):
            os.kill(server_pid, signal.SIGKILL)

"""Warm start, end to end without Snakemake: a server forks each job script; the job sees an ordinary process.

Most tests use a server that preloads only json (fast); the last ones use the
real preload (lmsweep.runtime.warm_server.PRELOAD), started exactly as a run's start does
(lmsweep.runtime.start).
On a GPU machine, tests/gpu/warm_cuda_check.py checks what a CPU cannot: CUDA
and bitsandbytes in jobs forked from the real server.
"""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lmsweep.runtime import warm_client, warm_server
from lmsweep.runtime.warm_protocol import INSIDE_ENV, SOCKET_ENV

SCRIPTS = Path(warm_server.__file__).resolve().parents[2]
# The server as the Snakefile starts it (socket, parent pid), preloading only json, with a short
# request time-out so that the tests of stalled clients are quick.
SERVE = (
    "import sys; from lmsweep.runtime import warm_server as warm; warm.REQUEST_TIMEOUT = 1.0; "
    "warm.serve(sys.argv[1], int(sys.argv[2]), preload_modules=('json',))"
)
# The same server whose fork() fails while the file named by FAIL_FORK exists (as when the
# machine is out of processes or memory); the probe fork at start-up still works.
SERVE_FAILING_FORK = (
    "import os, sys; from lmsweep.runtime import warm_server as warm\n"
    "real_fork = os.fork\n"
    "def fork():\n"
    "    if os.path.exists(os.environ['FAIL_FORK']):\n"
    "        raise BlockingIOError(11, 'Resource temporarily unavailable')\n"
    "    return real_fork()\n"
    "os.fork = fork\n"
    "warm.serve(sys.argv[1], int(sys.argv[2]), preload_modules=('json',))\n"
)
JOB = textwrap.dedent(
    """
    import json, os, sys
    from lmsweep.runtime.warm_client import delegate

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
        "path0": sys.path[0],
        "argv": sys.argv[1:],
        "client_var": os.environ.get("CLIENT_VAR"),
        "server_var": os.environ.get("SERVER_VAR"),
        "inside": os.environ.get("LMSWEEP_WARM_CHILD"),
        "bitsandbytes_hidden": "bitsandbytes" in sys.modules and sys.modules["bitsandbytes"] is None,
    }))
    sys.exit(3)
    """
)
COLD_LINE = "this job runs cold"


def wait_for(condition, polls=600):
    """Whether `condition()` came true within `polls` looks, 50 ms apart (a count, not a clock)."""
    for _ in range(polls):
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


def start_server(socket_path, parent: int, cwd, code=SERVE, log=None, **env):
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(socket_path), str(parent)],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(SCRIPTS), "SERVER_VAR": "server only", **env},
        stdout=subprocess.DEVNULL, stderr=log or subprocess.PIPE,
    )
    if not wait_for(lambda: socket_path.exists() or proc.poll() is not None):
        proc.kill()
        pytest.fail("the warm server did not come up")
    assert proc.poll() is None, "the warm server exited"
    return proc


def short_socket_folder() -> Path:
    # Unix socket paths are limited to about 100 bytes: keep it short, whatever the test's tmp_path.
    return Path(tempfile.mkdtemp(prefix="lmsweep-test-"))


def remove(folder: Path) -> None:
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()


@pytest.fixture
def socket_path():
    folder = short_socket_folder()
    yield folder / "s"
    remove(folder)


@pytest.fixture
def server(socket_path, tmp_path):
    log = tmp_path / "server.log"
    with open(log, "w") as stream:
        proc = start_server(socket_path, os.getpid(), cwd=tmp_path, log=stream)
    yield proc, socket_path, log
    proc.kill()
    proc.wait()


@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(JOB)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return path, workdir


def client_env(socket_path=None, **extra):
    env = {k: v for k, v in os.environ.items() if k not in (SOCKET_ENV, INSIDE_ENV, "SERVER_VAR")}
    env.update({"PYTHONPATH": str(SCRIPTS), "CLIENT_VAR": "from the client", **extra})
    if socket_path is not None:
        env[SOCKET_ENV] = str(socket_path)
    return env


def run_job(job, *args, socket_path=None, **env):
    script, workdir = job
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=workdir, env=client_env(socket_path, **env),
        capture_output=True, text=True,
    )


def assert_warm(result, server_pid):
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["ppid"] == server_pid
    assert COLD_LINE not in result.stderr


def assert_cold(result):
    """Ran in the job's own process, with one line on stderr saying so."""
    assert result.returncode == 3, result.stderr
    out = json.loads(result.stdout)
    assert out["ppid"] == os.getpid() and out["inside"] is None
    assert result.stderr.count(COLD_LINE) == 1, result.stderr


def test_the_job_runs_in_a_fork_of_the_server_and_exits_like_itself(server, job):
    proc, socket_path, _ = server
    result = run_job(job, "a", "b c", socket_path=socket_path)
    assert result.returncode == 3, result.stderr
    out = json.loads(result.stdout)
    assert out["ppid"] == proc.pid  # forked by the server, not run by the client
    assert out["argv"] == ["a", "b c"]
    assert out["cwd"] == str(job[1])  # the client's working directory
    assert out["path0"] == str(job[0].parent)  # the script's folder first on sys.path, as in a cold run
    assert out["client_var"] == "from the client"  # the client's environment ...
    assert out["server_var"] is None  # ... and only that
    assert out["inside"] == "1"
    assert out["bitsandbytes_hidden"] is False  # hidden in the server only, as in a cold process
    assert result.stderr == "to stderr\n"


def test_the_same_job_run_cold_gives_the_same_output_but_its_own_process(job):
    result = run_job(job, "a", "b c")
    assert result.returncode == 3, result.stderr
    out = json.loads(result.stdout)
    assert out["ppid"] == os.getpid()
    assert out["inside"] is None and out["cwd"] == str(job[1]) and out["argv"] == ["a", "b c"]
    assert out["path0"] == str(job[0].parent)
    assert result.stderr == "to stderr\n"  # no server configured: no line about one


def test_an_exception_in_the_job_exits_1_with_its_traceback(server, job):
    result = run_job(job, "crash", socket_path=server[1])
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: the job crashed" in result.stderr
    assert result.stdout == ""


def test_sys_exit_with_a_message(server, tmp_path):
    script = tmp_path / "message.py"
    script.write_text("import sys\nfrom lmsweep.runtime.warm_client import delegate\ndelegate()\nsys.exit('no predictions')\n")
    result = subprocess.run(
        [sys.executable, str(script)], env=client_env(server[1]), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr == "no predictions\n"


def test_the_server_serves_many_jobs(server, job):
    pids = set()
    for i in range(3):
        result = run_job(job, str(i), socket_path=server[1])
        assert_warm(result, server[0].pid)
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
        # The fork runs the script only after the client's go, sent once its signal forwarding is in place.
        child = int(client.stdout.readline())
        assert child != client.pid and is_running(child)
        getattr(client, stop)()
        assert client.wait() != 0
        assert wait_for(lambda: not is_running(child), polls=200)
    finally:
        client.kill()
        client.wait()
        if is_running(child):
            os.kill(child, signal.SIGKILL)


def test_delegate_returns_without_a_server(monkeypatch, tmp_path, lmsweep_log):
    monkeypatch.delenv(SOCKET_ENV, raising=False)
    monkeypatch.delenv(INSIDE_ENV, raising=False)
    assert warm_client.delegate() is None
    assert lmsweep_log() == []  # no warm start configured: nothing to say
    monkeypatch.setenv(SOCKET_ENV, str(tmp_path / "no-such-socket"))
    assert warm_client.delegate() is None
    (said,) = lmsweep_log()
    assert COLD_LINE in said and "no-such-socket" in said and "FileNotFoundError" in said


def test_a_socket_left_by_a_dead_server_means_a_cold_run(socket_path, job, tmp_path):
    proc = start_server(socket_path, os.getpid(), cwd=tmp_path)
    proc.kill()
    proc.wait()
    assert socket_path.exists()  # SIGKILL leaves the socket file behind
    assert_cold(run_job(job, socket_path=socket_path))


def test_delegate_returns_inside_the_fork(monkeypatch, server):
    # In the fork the job's own delegate() call must not send the job to the server again.
    monkeypatch.setenv(SOCKET_ENV, str(server[1]))
    monkeypatch.setenv(INSIDE_ENV, "1")
    assert warm_client.delegate() is None


def test_the_server_exits_when_its_parent_does(socket_path):
    launcher = subprocess.Popen(
        [sys.executable, "-c",
         "import os, subprocess, sys, time\n"
         f"p = subprocess.Popen([sys.executable, '-c', {SERVE!r}, {str(socket_path)!r}, str(os.getpid())])\n"
         "print(p.pid, flush=True)\n"
         "time.sleep(120)\n"],
        env={**os.environ, "PYTHONPATH": str(SCRIPTS)}, stdout=subprocess.PIPE, text=True,
    )
    server_pid = int(launcher.stdout.readline())
    try:
        assert wait_for(socket_path.exists), "the warm server did not come up"
        assert is_running(server_pid)
        launcher.kill()
        launcher.wait()
        assert wait_for(lambda: not is_running(server_pid), polls=300)
        assert not socket_path.exists()  # it cleaned up after itself
    finally:
        launcher.kill()
        launcher.wait()
        if is_running(server_pid):
            os.kill(server_pid, signal.SIGKILL)


# --- one request cannot stop the server ------------------------------------------------------


def raw_client(socket_path, payload: bytes, fds=(0, 1, 2)):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(socket_path))
    if fds:
        socket.send_fds(conn, [payload], list(fds))
    elif payload:
        conn.sendall(payload)
    return conn


def framed(obj) -> bytes:
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return struct.pack("!I", len(data)) + data


def wait_for_log(log: Path, text: str, polls=300) -> bool:
    return wait_for(lambda: text in log.read_text(), polls=polls)


@pytest.mark.parametrize(
    "payload, fds, hang_up, logged",
    [
        (b"", (), True, "before sending a request"),  # connects and goes away
        (struct.pack("!I", 1000) + b'{"scr', (0, 1, 2), True, "after 5 of 1000 bytes"),  # dies mid-request
        (framed(b"{not json"), (0, 1, 2), False, "JSONDecodeError"),
        (framed({"script": 1}), (0, 1, 2), False, "not {script, argv, cwd, env}"),
        (framed({"script": "x.py", "argv": [], "cwd": "/", "env": {}}), (), False, "0 file descriptors"),
        (struct.pack("!I", 1 << 30), (0, 1, 2), False, "a request of 1073741824 bytes announced"),
    ],
    ids=["closed", "half-request", "malformed-json", "wrong-shape", "no-streams", "huge-length"],
)
def test_a_bad_request_is_logged_and_the_server_goes_on(server, job, payload, fds, hang_up, logged):
    proc, socket_path, log = server
    conn = raw_client(socket_path, payload, fds)
    try:
        if hang_up:
            conn.close()
        assert wait_for_log(log, logged), log.read_text()
        if not hang_up:
            assert conn.recv(1) == b""  # the server closed the connection, sending no pid
    finally:
        conn.close()
    assert proc.poll() is None
    assert_warm(run_job(job, socket_path=socket_path), proc.pid)


def test_a_client_that_stalls_mid_request_holds_the_server_only_until_the_time_out(server, job):
    proc, socket_path, log = server
    stalled = raw_client(socket_path, struct.pack("!I", 1000) + b'{"scr')  # and then nothing, socket open
    try:
        # Queued behind the stalled client: served warm only if the server dropped that one first (a job waits
        # REPLY_TIMEOUT for its fork's pid before it runs cold, 60 times the server's REQUEST_TIMEOUT here).
        result = run_job(job, socket_path=socket_path)
        assert_warm(result, proc.pid)
        assert "TimeoutError" in log.read_text()
        assert stalled.recv(1) == b""
    finally:
        stalled.close()


def test_a_failing_fork_runs_that_job_cold_and_the_server_goes_on(socket_path, job, tmp_path):
    flag = tmp_path / "fail-fork"
    log = tmp_path / "server.log"
    with open(log, "w") as stream:
        proc = start_server(socket_path, os.getpid(), cwd=tmp_path, code=SERVE_FAILING_FORK, log=stream,
                            FAIL_FORK=str(flag))
    try:
        flag.touch()
        assert_cold(run_job(job, socket_path=socket_path))
        assert "BlockingIOError" in log.read_text()
        flag.unlink()
        assert_warm(run_job(job, socket_path=socket_path), proc.pid)
    finally:
        proc.kill()
        proc.wait()


# --- the job's side: cold before the pid, failed after it ------------------------------------


def fake_server(socket_path, replies):
    """A server that answers one request with `replies` (raw bytes each, or None to stall), then closes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(1)

    def answer():
        conn, _ = listener.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        for fd in fds:
            os.close(fd)
        while len(msg) < 4 or len(msg) < 4 + struct.unpack("!I", msg[:4])[0]:  # the whole request
            msg += conn.recv(1 << 20)
        for reply in replies:
            if reply is None:
                time.sleep(5)
            else:
                conn.sendall(reply)
        conn.close()
        listener.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "replies",
    [[], [b"\x00\x00"], [framed(b"[1, 2")], [framed({"pid": "12"})], [framed({"exit": 0})], [None]],
    ids=["closed", "half-header", "malformed-json", "pid-not-int", "no-pid", "time-out"],
)
def test_no_pid_from_the_server_means_a_cold_run(socket_path, job, replies):
    fake_server(socket_path, replies)
    script, workdir = job
    code = (
        "import runpy, sys; from lmsweep.runtime import warm_client; warm_client.REPLY_TIMEOUT = 1.0; "
        f"sys.argv = [{str(script)!r}]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=client_env(socket_path),
        capture_output=True, text=True,
    )
    assert_cold(result)


@pytest.mark.parametrize("after_pid", [[], [b"\x00\x00\x00\x10{"], [framed({"exit": "3"})]],
                         ids=["closed", "half-reply", "bad-exit"])
def test_a_lost_fork_after_its_pid_fails_the_job_and_never_runs_it_again(socket_path, job, after_pid):
    fake_server(socket_path, [framed({"pid": 999999999}), *after_pid])
    result = run_job(job, socket_path=socket_path)
    assert result.returncode == 1
    assert result.stdout == ""  # the job's own code did not run in the job process
    assert "the job failed" in result.stderr and COLD_LINE not in result.stderr


def test_a_fork_that_gets_no_go_does_not_run_the_job(server, job, tmp_path):
    """The job process gave up on the pid (time-out) and runs cold: the fork must not run it too."""
    proc, socket_path, _ = server
    script, workdir = job
    marker = tmp_path / "ran"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    conn = raw_client(socket_path, framed({
        "script": str(script), "argv": [str(script)], "cwd": str(workdir), "env": client_env(),
    }))
    header = conn.recv(4)
    child = json.loads(conn.recv(struct.unpack("!I", header)[0]))["pid"]
    conn.close()  # no go
    assert wait_for(lambda: not is_running(child), polls=200)
    assert not marker.exists()


def test_not_on_linux_no_server_starts_and_jobs_run_cold(monkeypatch, socket_path, capfd):
    monkeypatch.setattr(sys, "platform", "darwin")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(1)
    listener.settimeout(0.5)
    monkeypatch.setenv(SOCKET_ENV, str(socket_path))
    monkeypatch.delenv(INSIDE_ENV, raising=False)
    try:
        assert warm_client.delegate() is None
        with pytest.raises(TimeoutError):
            listener.accept()  # delegate() never connected
        with pytest.raises(SystemExit):
            warm_server.serve(str(socket_path) + "2", os.getpid(), preload_modules=("no_such_module_is_imported",))
        assert "safe on Linux only, not darwin" in capfd.readouterr().err
        assert not Path(str(socket_path) + "2").exists()
    finally:
        listener.close()


@pytest.mark.parametrize("breakage", [
    "torch.cuda.is_initialized = lambda: True",
    "torch.cuda._is_in_bad_fork = lambda: True",
], ids=["initialized", "bad-fork"])
def test_the_server_refuses_to_serve_if_forks_would_find_cuda_broken(socket_path, tmp_path, breakage):
    """What a GPU shows when the server touched CUDA, simulated: the server exits, and jobs run cold."""
    code = (
        f"import sys, torch; {breakage}; from lmsweep.runtime import warm_server; "
        "warm_server.serve(sys.argv[1], int(sys.argv[2]), preload_modules=('torch',))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(socket_path), str(os.getpid())],
        env={**os.environ, "PYTHONPATH": str(SCRIPTS)}, capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert "refusing to serve" in result.stderr and "every job runs cold" in result.stderr
    assert not socket_path.exists()


# --- the real preload ------------------------------------------------------------------------

# The CUDA calls a library can make at import. On this CPU machine none reaches a GPU, so the
# test counts the calls instead of their effect (tests/gpu/warm_cuda_check.py sees the effect).
PRELOAD_PROBE = textwrap.dedent(
    """
    import json, sys, traceback
    import torch

    calls = []
    for name in ("is_available", "device_count", "init", "_lazy_init", "current_device", "get_device_capability",
                 "get_device_properties", "get_device_name", "is_bf16_supported", "mem_get_info", "set_device"):
        def spy(*args, _real=getattr(torch.cuda, name), _name=name, **kwargs):
            calls.append(f"torch.cuda.{_name} from {traceback.extract_stack(limit=2)[0].filename}")
            return _real(*args, **kwargs)
        setattr(torch.cuda, name, spy)

    from lmsweep.runtime import warm_server

    warm_server.preload()
    result = {
        "calls": list(calls),
        "initialized": torch.cuda.is_initialized(),
        "missing": [m for m in warm_server.PRELOAD if m not in sys.modules],
        "bitsandbytes_hidden": sys.modules.get("bitsandbytes", "absent") is None,
    }
    # The spy catches what bitsandbytes does at import: it would have caught the server importing it.
    del sys.modules["bitsandbytes"]
    import bitsandbytes
    result["calls_by_bitsandbytes"] = calls[len(result["calls"]):]
    print(json.dumps(result))
    """
)


def test_the_real_preload_touches_no_cuda():
    proc = subprocess.run(
        [sys.executable, "-c", PRELOAD_PROBE], env={**os.environ, "PYTHONPATH": str(SCRIPTS)},
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["missing"] == []
    assert result["bitsandbytes_hidden"]
    assert result["calls"] == []
    assert result["initialized"] is False
    assert result["calls_by_bitsandbytes"], "the spy saw nothing: it would not see a preloaded library either"


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """The server with the real preload, started as lmsweep.runtime.start starts it; its own threads: 1."""
    folder = short_socket_folder()
    path = folder / "s"
    log = tmp_path_factory.mktemp("real_server") / "warm_start.log"
    with open(log, "w") as stream:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "lmsweep" / "runtime" / "warm_server.py"), str(path), str(os.getpid())],
            env={**os.environ, "PYTHONPATH": str(SCRIPTS), "OMP_NUM_THREADS": "1"},
            stdout=stream, stderr=subprocess.STDOUT,
        )
    try:
        if not wait_for(lambda: path.exists() or proc.poll() is not None, polls=6000) or proc.poll() is not None:
            pytest.fail(f"the warm server did not come up: {log.read_text()}")
        yield proc, path, log
    finally:
        proc.kill()
        proc.wait()
        remove(folder)


def run_code(code: str, tmp_path, socket_path, **env):
    script = tmp_path / "job.py"
    script.write_text("from lmsweep.runtime.warm_client import delegate\ndelegate()\n" + textwrap.dedent(code))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=client_env(socket_path, **env),
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert COLD_LINE not in result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_fork_uses_its_jobs_thread_count_not_the_servers(real_server, tmp_path):
    out = run_code(
        """
        import json, os, threadpoolctl, torch
        blas = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        print(json.dumps({"ppid": os.getppid(), "torch": torch.get_num_threads(), "blas": blas}))
        """,
        tmp_path, real_server[1], OMP_NUM_THREADS="2",  # as Snakemake sets it for a job of 2 threads
    )
    assert out["ppid"] == real_server[0].pid
    assert out["torch"] == 2  # the server's own: 1
    assert out["blas"] and set(out["blas"]) == {2}


@pytest.mark.parametrize("load_in_4bit", [False, True])
def test_a_fork_sees_bitsandbytes_as_a_cold_process_does(real_server, tmp_path, load_in_4bit):
    """Hidden in the server always; in the fork the job's skip_bitsandbytes() decides, as in a cold run."""
    out = run_code(
        f"""
        import json, os, sys
        from lmsweep.models import skip_bitsandbytes

        skip_bitsandbytes({load_in_4bit})
        from peft.import_utils import is_bnb_4bit_available
        from transformers.utils import is_bitsandbytes_available
        print(json.dumps({{
            "ppid": os.getppid(), "transformers": is_bitsandbytes_available(), "peft": is_bnb_4bit_available(),
            "module": type(sys.modules.get("bitsandbytes")).__name__,
        }}))
        """,
        tmp_path, real_server[1],
    )
    assert out["ppid"] == real_server[0].pid
    assert out["transformers"] is load_in_4bit and out["peft"] is load_in_4bit
    assert out["module"] == ("module" if load_in_4bit else "NoneType")


SNAKEMAKE_PREAMBLE = textwrap.dedent(
    """
    # As Snakemake's script: directive writes a job's script: a preamble that builds the `snakemake`
    # object, then the script's source. The first line records which process runs the file.
    import json as _json, os as _os, types as _types

    with open({pids!r}, "a") as _pids:
        _pids.write(f"{{_os.getpid()}} {{_os.getppid()}}\\n")


    class _Names(list):
        def __init__(self, named):
            super().__init__(named.values())
            self.__dict__.update(named)

        def items(self):
            return list(self.__dict__.items())

        def get(self, key, default=None):  # as Snakemake's Namedlist
            return self.__dict__.get(key, default)

        def keys(self):
            return list(self.__dict__)


    _job = _json.loads({job!r})
    snakemake = _types.SimpleNamespace(threads=_job["threads"], rule=_job["rule"],
                                       **{{k: _Names(v) for k, v in _job["named"].items()}})
    """
)


def test_a_real_script_through_the_real_server_gives_the_cold_result(real_server, tmp_path, tiny_llama, demo_records,
                                                                    cpu_load):
    """scripts/generate.py as Snakemake runs it: warm (in a fork of the server) and cold, the same predictions."""
    from dataclasses import asdict

    from lmsweep.io import read_jsonl, write_jsonl
    from lmsweep.settings import Decoding, RunLabels
    from lmsweep.steps import generate

    proc, socket_path, _ = real_server
    write_jsonl(tmp_path / "test.jsonl", demo_records[:6])
    sampling = {"do_sample": True, "top_k": 50, "temperature": 0.8, "max_new_tokens": 12}
    settings = generate.Settings(labels=RunLabels(model="tiny_llama", variant="base", decoding="baseline", replicate=0),
                                 base_model=str(tiny_llama), load=cpu_load(),
                                 decoding=Decoding(settings=sampling, defaults="library", sweep=None), batch_size=4,
                                 seed=7, device="cpu")
    times = {}
    for mode in ("warm", "cold"):
        out, pids = tmp_path / f"{mode}.jsonl", tmp_path / f"{mode}.pids"
        job = {"threads": 1, "rule": "generate", "named": {
            "input": {"test": str(tmp_path / "test.jsonl"), "base": str(tiny_llama), "adapter": []},
            "output": {"predictions": str(out), "info": str(tmp_path / f"{mode}.info.json")},
            "log": {"log": str(tmp_path / f"{mode}.log")},
            "resources": {"gpu": 0},
            "params": {"code": {}, "settings": asdict(settings)},
            "wildcards": {"model": "tiny_llama", "variant": "base", "decoding": "baseline", "rep": "0"},
        }}
        script = tmp_path / f"tmp{mode}.generate.py"
        script.write_text(SNAKEMAKE_PREAMBLE.format(pids=str(pids), job=json.dumps(job))
                          + (SCRIPTS / "generate.py").read_text())
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
            env=client_env(socket_path if mode == "warm" else None, OMP_NUM_THREADS="1"),
        )
        times[mode] = time.monotonic() - start  # printed, not asserted
        assert result.returncode == 0, (result.stderr + (tmp_path / f"{mode}.log").read_text())[-3000:]
        assert COLD_LINE not in result.stderr
        runs = [tuple(map(int, line.split())) for line in pids.read_text().splitlines()]
        if mode == "warm":  # the job process, then the server's fork
            assert [ppid for _, ppid in runs] == [os.getpid(), proc.pid]
        else:
            assert [ppid for _, ppid in runs] == [os.getpid()]
    print(f"generate.py: warm {times['warm']:.1f} s, cold {times['cold']:.1f} s")
    warm_out, cold_out = read_jsonl(tmp_path / "warm.jsonl"), read_jsonl(tmp_path / "cold.jsonl")
    assert len(warm_out) == 6
    assert [r["prediction"] for r in warm_out] == [r["prediction"] for r in cold_out]

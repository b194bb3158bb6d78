"""One GPU per job: claims from concurrent processes never share a device, and a dead job's device is free."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lmsweep import gpus

SCRIPTS = Path(gpus.__file__).resolve().parents[1]
HOLDER = textwrap.dedent("""
    import os, sys, time
    from lmsweep.gpus import claim
    got = claim(int(sys.argv[1]), timeout=float(sys.argv[2]), log=lambda line: None)
    print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    time.sleep(float(sys.argv[3]))
""")


def holder(tmp_path, count=1, timeout=5.0, hold=30.0, devices="0,1,2"):
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS), gpus.LOCKS_ENV: str(tmp_path / "locks"),
           gpus.DEVICES_ENV: devices}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(count), str(timeout), str(hold)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def device_of(proc) -> str:
    return proc.stdout.readline().strip()


def test_running_jobs_never_share_a_device(tmp_path):
    procs = [holder(tmp_path) for _ in range(3)]
    try:
        assert sorted(device_of(p) for p in procs) == ["0", "1", "2"]
    finally:
        for p in procs:
            p.kill()


def test_a_job_beyond_the_devices_waits_then_says_why(tmp_path):
    procs = [holder(tmp_path, devices="0,1") for _ in range(2)]
    try:
        assert {device_of(p) for p in procs} == {"0", "1"}
        third = holder(tmp_path, timeout=1.0, devices="0,1")
        _, err = third.communicate(timeout=30)
        assert third.returncode != 0 and "no 1 free GPU(s) among 0, 1 after 1 s" in err
    finally:
        for p in procs:
            p.kill()


def test_a_killed_jobs_device_is_free_again(tmp_path):
    first = holder(tmp_path, devices="0")
    assert device_of(first) == "0"
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = holder(tmp_path, devices="0", hold=0)
    assert device_of(second) == "0"
    second.wait(timeout=30)


def test_a_job_waits_for_a_device_that_is_coming_free(tmp_path):
    first = holder(tmp_path, devices="0", hold=1.5)
    assert device_of(first) == "0"
    started = time.monotonic()
    second = holder(tmp_path, devices="0", timeout=20, hold=0)
    assert device_of(second) == "0" and time.monotonic() - started > 1.0
    second.wait(timeout=30)


def test_a_training_job_claims_several_and_keeps_them_through_exec(tmp_path):
    """accelerate launch replaces the job's process: the locks must survive the exec."""
    code = HOLDER.replace('time.sleep(float(sys.argv[3]))',
                          'os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(30)"])')
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS), gpus.LOCKS_ENV: str(tmp_path / "locks"),
           gpus.DEVICES_ENV: "0,1,2"}
    trainer = subprocess.Popen([sys.executable, "-c", code, "2", "5", "0"], env=env, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert trainer.stdout.readline().strip() == "0,1"
        time.sleep(0.5)  # the exec has happened
        other = holder(tmp_path, devices="0,1,2")
        assert device_of(other) == "2"
        other.kill()
    finally:
        trainer.kill()


def test_the_warm_servers_fork_keeps_its_jobs_claim(tmp_path):
    """A job claims its GPU, then lmsweep.warm runs it in a fork of the real server, where the script claims
    again: that must keep the job's device at once (it waited for its own job's lock until the time-out)."""
    import socket

    from lmsweep import warm

    script = tmp_path / "gpu_job.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        from lmsweep.gpus import claim
        from lmsweep.warm import INSIDE_ENV, delegate
        got = claim(1, timeout=3, log=lambda line: None)
        delegate()
        print(os.getpid(), os.environ.get(INSIDE_ENV), got, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    """))
    folder = Path(f"/tmp/lmsweep-test-{os.getpid()}")
    folder.mkdir(exist_ok=True)
    path = folder / "s"
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS)}
    server = subprocess.Popen([sys.executable, "-c", "import sys; from lmsweep import warm; "
                               "warm.serve(sys.argv[1], int(sys.argv[2]), preload_modules=('json',))",
                               str(path), str(os.getpid())], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(path))
                break
            except OSError:
                time.sleep(0.1)
        env.update({gpus.LOCKS_ENV: str(tmp_path / "locks"), gpus.DEVICES_ENV: "0,1", warm.SOCKET_ENV: str(path)})
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env.pop(gpus.CLAIMED_ENV, None)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        _, inside, got, visible = result.stdout.split(maxsplit=3)
        assert inside == "1"  # ran in the server's fork
        assert got == "['0']" and visible.strip() == "0"
        assert time.monotonic() - started < 3  # no wait for the lock the job itself holds
    finally:
        server.kill()
        server.wait(timeout=10)
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


def test_no_lock_folder_means_no_claim(monkeypatch):
    monkeypatch.delenv(gpus.LOCKS_ENV, raising=False)
    assert gpus.claim(1) == []


def test_more_than_the_run_may_use_is_an_error(tmp_path):
    with pytest.raises(gpus.NoFreeGPU, match="needs 3 GPU"):
        gpus.claim(3, lock_dir=tmp_path, devices=["0", "1"])


def test_visible_devices_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpus.visible_devices() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus.visible_devices() == []

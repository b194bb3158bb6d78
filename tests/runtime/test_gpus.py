"""One GPU per job: claims from concurrent processes never share a device, and a dead job's device is free."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lmsweep.runtime import gpus

SCRIPTS = Path(gpus.__file__).resolve().parents[2]
# A job holding its claim: prints its devices, then holds them until `release` exists (or for good).
HOLDER = textwrap.dedent("""
    import logging, os, sys, time
    from pathlib import Path
    from lmsweep.runtime.gpus import claim
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    got = claim(int(sys.argv[1]), tries=int(sys.argv[2]), poll=0.1)
    print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    release = Path(sys.argv[3])
    while sys.argv[3] != "-" and not release.exists():
        time.sleep(0.05)
""")


def holder(tmp_path, count=1, tries=50, release="never", devices="0,1,2"):
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS), gpus.LOCKS_ENV: str(tmp_path / "locks"),
           gpus.DEVICES_ENV: devices}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop(gpus.CLAIMED_ENV, None)
    release = "-" if release is None else str(tmp_path / release)
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(count), str(tries), release], env=env,
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
        third = holder(tmp_path, tries=3, devices="0,1")
        _, err = third.communicate()
        assert third.returncode != 0 and "no 1 free GPU(s) among 0, 1 after 3 looks, 0.1 s apart" in err
    finally:
        for p in procs:
            p.kill()


def test_a_killed_jobs_device_is_free_again(tmp_path):
    first = holder(tmp_path, devices="0")
    assert device_of(first) == "0"
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = holder(tmp_path, devices="0", tries=1, release=None)
    assert device_of(second) == "0"  # at the first look
    second.wait()


def test_a_job_waits_for_a_device_that_is_coming_free(tmp_path):
    first = holder(tmp_path, devices="0", release="done")
    assert device_of(first) == "0"
    second = holder(tmp_path, devices="0", tries=6000, release=None)
    assert second.stderr.readline().startswith("waiting for 1 free GPU(s) among 0")  # it found the device taken
    (tmp_path / "done").touch()  # the first job ends
    assert device_of(second) == "0"
    second.wait()
    said = second.stderr.read()
    assert int(said.split("free at look ")[1].split()[0]) > 1, said  # and took it when it came free


def test_a_training_job_claims_several_and_keeps_them_through_exec(tmp_path):
    """accelerate launch replaces the job's process: the locks must survive the exec."""
    release = "release = Path(sys.argv[3])"
    assert release in HOLDER
    code = HOLDER[:HOLDER.index(release)] + (
        'os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "exec-ed"])\n')
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS), gpus.LOCKS_ENV: str(tmp_path / "locks"),
           gpus.DEVICES_ENV: "0,1,2"}
    env.pop(gpus.CLAIMED_ENV, None)
    trainer = subprocess.Popen([sys.executable, "-c", code, "2", "5", "-"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert trainer.stdout.readline().strip() == "0,1"
        cmdline = Path(f"/proc/{trainer.pid}/cmdline")
        for _ in range(600):  # until the exec has happened (polls, 50 ms apart)
            if cmdline.read_bytes().endswith(b"exec-ed\0"):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the job did not exec")
        other = holder(tmp_path, devices="0,1,2", tries=1)
        assert device_of(other) == "2"  # 0 and 1 are still the exec-ed process's
        other.kill()
    finally:
        trainer.kill()


def test_the_warm_servers_fork_keeps_its_jobs_claim(tmp_path):
    """A job claims its GPU, then the warm server's fork runs it, where the script claims again: that must keep
    the job's device at its first look (it waited for its own job's lock until the time-out). One look only:
    a wait would fail the job."""
    import socket

    from lmsweep.runtime.warm_protocol import SOCKET_ENV

    script = tmp_path / "gpu_job.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        from lmsweep.runtime.gpus import claim
        from lmsweep.runtime.warm_client import delegate
        from lmsweep.runtime.warm_protocol import INSIDE_ENV
        got = claim(1, tries=1)
        delegate()
        print(os.getpid(), os.environ.get(INSIDE_ENV), got, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    """))
    folder = Path(f"/tmp/lmsweep-test-{os.getpid()}")
    folder.mkdir(exist_ok=True)
    path = folder / "s"
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS)}
    server = subprocess.Popen([sys.executable, "-c", "import sys; from lmsweep.runtime import warm_server; "
                               "warm_server.serve(sys.argv[1], int(sys.argv[2]), preload_modules=('json',))",
                               str(path), str(os.getpid())], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # until the server listens
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(path))
                break
            except OSError:
                time.sleep(0.1)
        env.update({gpus.LOCKS_ENV: str(tmp_path / "locks"), gpus.DEVICES_ENV: "0,1", SOCKET_ENV: str(path)})
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env.pop(gpus.CLAIMED_ENV, None)
        result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        _, inside, got, visible = result.stdout.split(maxsplit=3)
        assert inside == "1"  # ran in the server's fork
        assert got == "['0']" and visible.strip() == "0"
    finally:
        server.kill()
        server.wait()
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

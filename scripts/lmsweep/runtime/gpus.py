"""One GPU per job on a workstation: each job claims free devices when it starts and holds them until it ends.

Snakemake limits how many GPU jobs run at once (the run's `gpu` resource) but
does not say which device each job gets: on a machine with several GPUs every
local job would start on device 0. So each GPU job of a local run claims the
devices it needs from a folder the run shares, one lock file per device, held
with `fcntl.flock` for the job's lifetime. The kernel drops a lock when its
holder dies, so a crashed or killed job's device is free again at once, with
no list to repair. The job then sees only its devices (`CUDA_VISIBLE_DEVICES`),
set before anything touches CUDA. A multi-GPU training job claims several and
keeps them through `accelerate launch` (the lock descriptors are inherited).
What the job process starts (the warm server's fork that runs the job,
accelerate's ranks) runs the script again: it finds the job's claim in
CLAIMED_ENV and keeps it, rather than waiting for a lock its own job holds.

The Snakefile turns this on for local runs (LOCKS_ENV names the folder,
DEVICES_ENV the devices the run may use); on a cluster the scheduler gives
each job its devices, and claim() does nothing.
"""

import fcntl
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCKS_ENV = "LMSWEEP_GPU_LOCKS"
DEVICES_ENV = "LMSWEEP_GPU_DEVICES"
CLAIMED_ENV = "LMSWEEP_GPU_CLAIMED"  # the devices this job holds, for the processes it starts
_held = []  # open lock files: a lock lasts as long as its descriptor


def visible_devices() -> list:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else every NVIDIA GPU of the machine.

    Read from the driver's /proc entries, without importing torch or touching CUDA.
    """
    shown = os.environ.get("CUDA_VISIBLE_DEVICES")
    if shown is not None:
        return [d.strip() for d in shown.split(",") if d.strip() and d.strip() != "-1"]
    gpus = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(gpus.iterdir())))] if gpus.is_dir() else []


class NoFreeGPU(RuntimeError):
    """No device came free in time: the run's `gpu` resource exceeds the devices it may use."""


def claim(count: int, lock_dir=None, devices=None, tries: int = 1200, poll: float = 0.5) -> list:
    """Hold `count` free devices for the rest of this process and make them the only ones it sees.

    Returns the device ids ([] when the run shares no lock folder: a cluster
    job, a by-hand run). Snakemake starts no more GPU jobs than the run's `gpu`
    resource, so a device is normally free at once; the wait (up to `tries`
    looks, `poll` seconds apart: 10 minutes) covers a device still held by a
    job that is ending.
    """
    lock_dir = lock_dir or os.environ.get(LOCKS_ENV)
    if not lock_dir or count < 1:
        return []
    if CLAIMED_ENV in os.environ:  # started by the job that holds the locks (warm fork, accelerate rank)
        return [d for d in os.environ[CLAIMED_ENV].split(",") if d]
    if devices is None:
        devices = [d for d in os.environ.get(DEVICES_ENV, "").split(",") if d] or visible_devices()
    if count > len(devices):
        raise NoFreeGPU(f"this job needs {count} GPU(s), the run may use {len(devices)} ({', '.join(devices)})")
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    for attempt in range(1, tries + 1):
        got = []
        for device in devices:
            handle = open(Path(lock_dir) / f"gpu{device}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            got.append((device, handle))
            if len(got) == count:
                break
        if len(got) == count:
            for _, handle in got:
                os.set_inheritable(handle.fileno(), True)  # kept by accelerate launch's processes
                _held.append(handle)
            chosen = [device for device, _ in got]
            os.environ["CUDA_VISIBLE_DEVICES"] = os.environ[CLAIMED_ENV] = ",".join(chosen)
            log.info(f"running on GPU {', '.join(chosen)} (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})"
                     + (f", free at look {attempt}" if attempt > 1 else ""))
            return chosen
        for _, handle in got:
            handle.close()
        if attempt == 1:
            log.info(f"waiting for {count} free GPU(s) among {', '.join(devices)} (another job holds them)")
        if attempt < tries:
            time.sleep(poll)
    raise NoFreeGPU(
        f"no {count} free GPU(s) among {', '.join(devices)} after {tries} looks, {poll:g} s apart: the run's gpu "
        f"resource is larger than the devices it may use; lower --resources gpu=N"
    )

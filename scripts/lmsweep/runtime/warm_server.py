"""Warm start: run the study's many short jobs from one process that imported torch once.

Every Snakemake job is a fresh Python process, and importing torch,
transformers, peft and bert-score costs 6 to 10 s of CPU here, more than a
demo-sized generation or scoring job itself. With `warm_start: true` (local
runs on Linux without --use-conda only) the Snakefile starts one server that
imports those libraries and then waits on a Unix socket. A job script calls
`delegate()` first: it sends the server its own script file, arguments,
environment, working directory and standard streams; the server forks, and the
fork runs the script as the job would have, writing to the job's own
stdout/stderr. The job process waits for the fork's exit status and exits
with it, so Snakemake sees an ordinary job.

What is guaranteed:

- The server never touches CUDA, so CUDA works in every fork (a fork may
  initialise it; only a parent that did breaks its forks). bitsandbytes, whose
  import initialises CUDA, is hidden in the server whatever the config; a
  library's `torch.cuda.is_available()` asks NVML, not the CUDA driver
  (PYTORCH_NVML_BASED_CUDA_CHECK=1). After preloading, the server refuses to
  serve (logs why and exits; every job runs cold) if torch.cuda.is_initialized()
  or if a fork of it finds CUDA unusable (torch's "bad fork").
- A fork starts as its job would cold: the job's environment, working
  directory, argv and streams; bitsandbytes visible again (a 4-bit job imports
  it in the fork; `models.skip_bitsandbytes(False)` hides it as in a cold
  process); torch's and the BLAS libraries' thread counts set from the job's
  OMP_NUM_THREADS (Snakemake sets it to the job's threads).
- A job never fails because of the warm start and never runs twice: any
  failure before the fork's pid reached the job (no server, a closed or
  malformed reply, a time-out) runs the job cold in its own process, with one
  line on stderr. The fork runs the script only after the job acknowledged that
  pid; from then on the fork is the job, and a lost connection makes the job
  fail (exit 1), never run again.
- One request cannot stop the server: a client that dies or sends half a
  request (read time-out REQUEST_TIMEOUT), malformed JSON or a failing fork is
  logged (logs/warm_start.log) and the server goes on.
- Linux only: elsewhere no server is started and delegate() returns.

Without the server (cluster jobs, conda envs, `warm_start: false`) `delegate()`
returns at once and the script runs cold.
"""

import json
import os
import signal
import socket
import struct
import sys
import time

from lmsweep.runtime.warm_protocol import (
    INSIDE_ENV, MAX_MESSAGE, REPLY_TIMEOUT, REQUEST_TIMEOUT, is_supported, recv, recv_exact, send, stacks_on_signal,
)

PRELOAD = (
    "torch",
    "transformers.modeling_utils",
    "transformers.generation.utils",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.bert.modeling_bert",
    "peft",
    "bert_score",
    "rouge_score.rouge_scorer",
    "sacrebleu",
    "pandas",
)
# Availability checks that cache their answer: one computed in the server,
# where bitsandbytes is hidden, must not stick in a fork that may import it.
BNB_CHECKS = (
    ("transformers.utils.import_utils", "is_bitsandbytes_available"),
    ("peft.import_utils", "is_bnb_available"),
    ("peft.import_utils", "is_bnb_4bit_available"),
)


def _apply_threads() -> None:
    """Give the fork the job's thread count: the libraries read it once, in the server, from the server's env."""
    try:
        threads = int(os.environ["OMP_NUM_THREADS"])
    except (KeyError, ValueError):
        return
    if threads < 1:
        return
    try:
        from threadpoolctl import threadpool_limits  # the BLAS pools numpy and scipy loaded in the server
    except ImportError:
        pass
    else:
        threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _unhide_bitsandbytes() -> None:
    """Make bitsandbytes importable again, as in a cold process (the job's skip_bitsandbytes() decides)."""
    if "bitsandbytes" in sys.modules and sys.modules["bitsandbytes"] is None:
        del sys.modules["bitsandbytes"]
    for module, name in BNB_CHECKS:
        check = getattr(sys.modules.get(module), name, None)
        if hasattr(check, "cache_clear"):
            check.cache_clear()


def _run_child(conn, request) -> int:
    """In the fork: become the job, run its script, return its exit status."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[INSIDE_ENV] = "1"
    sys.argv = request["argv"]
    sys.path[0] = os.path.dirname(request["script"])  # as `python script.py` sets it
    _unhide_bitsandbytes()
    _apply_threads()
    stacks_on_signal()  # on the job's own stderr, now that the fork has it
    import runpy
    import threading
    import traceback

    # If the job process dies (SIGKILL), its end of the socket closes: stop too.
    def watch():
        try:
            conn.recv(1)
        finally:
            os._exit(137)

    threading.Thread(target=watch, daemon=True).start()
    try:
        runpy.run_path(request["script"], run_name="__main__")
        return 0
    except SystemExit as exit_:
        code = exit_.code
        if code is None:
            return 0
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            return 1
        return code
    except BaseException:
        traceback.print_exc()
        return 1


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} warm start: {message}", file=sys.stderr, flush=True)


def preload(modules=PRELOAD) -> None:
    """Import `modules` as the server does: bitsandbytes hidden, no CUDA driver call for availability checks."""
    import importlib

    sys.modules.setdefault("bitsandbytes", None)
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    for name in modules:
        importlib.import_module(name)


def cuda_problem() -> str | None:
    """Why CUDA would not work in a fork of this process, or None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if torch.cuda.is_initialized():
        return "torch.cuda.is_initialized() is true in the server"
    # A call of the CUDA driver (cudaGetDeviceCount) leaves is_initialized() false
    # but marks every fork bad: ask a fork.
    pid = os.fork()
    if pid == 0:
        os._exit(3 if torch.cuda._is_in_bad_fork() else 0)
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        return "a fork of the server is in torch's bad-fork state (a library called the CUDA driver while importing)"
    return None


def _read_request(conn):
    """The request and the job's three standard stream descriptors; raises if anything is off."""
    deadline = time.monotonic() + REQUEST_TIMEOUT
    conn.settimeout(REQUEST_TIMEOUT)
    msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    try:
        if not msg:
            raise ConnectionError("the client closed the connection before sending a request")
        header = recv_exact(conn, 4, msg[:4], deadline)
        length = struct.unpack("!I", header)[0]
        if length > MAX_MESSAGE:
            raise ValueError(f"a request of {length} bytes announced (at most {MAX_MESSAGE})")
        request = json.loads(recv_exact(conn, length, msg[4:], deadline)[:length])
        if len(fds) != 3:
            raise ValueError(f"{len(fds)} file descriptors with the request, not 3 (stdin, stdout, stderr)")
        if not (
            isinstance(request, dict)
            and all(isinstance(request.get(k), str) for k in ("script", "cwd"))
            and isinstance(request.get("argv"), list) and all(isinstance(a, str) for a in request["argv"])
            and isinstance(request.get("env"), dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in request["env"].items())
        ):
            raise ValueError("the request is not {script, argv, cwd, env} with strings")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _start_child(server, conn, request, fds) -> None:
    """In the fork: take the job's streams, report the pid, wait for the job's go, run. Never returns."""
    code = 1
    try:
        server.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        conn.settimeout(REPLY_TIMEOUT)
        send(conn, {"pid": os.getpid()})
        try:
            go = recv(conn, deadline=time.monotonic() + REPLY_TIMEOUT)
        except (OSError, ValueError):
            go = None
        if go != {"go": True}:
            os._exit(1)  # the job process gave up on this fork and runs cold: never run the job twice
        conn.settimeout(None)
        code = _run_child(conn, request)
        sys.stdout.flush()
        sys.stderr.flush()
        send(conn, {"exit": code})
    except BaseException:
        # The job process reports a lost fork; nothing here may reach the server's loop.
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _handle(server, conn) -> None:
    request, fds = _read_request(conn)
    try:
        if os.fork() == 0:
            _start_child(server, conn, request, fds)
    finally:
        for fd in fds:
            os.close(fd)


def serve(path: str, parent: int, preload_modules=PRELOAD) -> None:
    """Import `preload_modules`, then fork one child per request until `parent` exits."""
    if not is_supported():
        _log(f"not started: forking a preloaded process is safe on Linux only, not {sys.platform}")
        sys.exit(1)
    start = time.monotonic()
    preload(preload_modules)
    problem = cuda_problem()
    if problem:
        _log(f"refusing to serve: {problem}; every job runs cold")
        sys.exit(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path + ".tmp")
    server.listen(64)
    os.rename(path + ".tmp", path)  # clients never see a socket that is not listening
    server.settimeout(1.0)
    _log(f"{len(preload_modules)} modules imported in {time.monotonic() - start:.1f} s; serving on {path}")
    try:
        while os.getppid() == parent:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError as err:  # out of file descriptors, say: wait, do not spin
                _log(f"accept failed: {err}")
                time.sleep(0.5)
                continue
            try:
                _handle(server, conn)
            except Exception as err:
                _log(f"request dropped, the job runs cold: {type(err).__name__}: {err}")
            finally:
                conn.close()
    finally:
        server.close()
        if os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    # Run as a file, Python put scripts/lmsweep/runtime/ first on sys.path, where a module of ours could
    # shadow a library's of the same name: put scripts/ there instead.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    serve(sys.argv[1], int(sys.argv[2]))

"""Warm start: run the study's many short jobs from one process that imported torch once.

Every Snakemake job is a fresh Python process, and importing torch,
transformers, peft and bert-score costs 6 to 10 s of CPU here, more than a
demo-sized generation or scoring job itself. With `warm_start: true` (local
runs without --use-conda only) the Snakefile starts one server that imports
those libraries and then waits on a Unix socket. A job script calls
`delegate()` first: it sends the server its own script file, arguments,
environment, working directory and standard streams; the server forks, and the
fork runs the script exactly as the job would have, writing to the job's own
stdout/stderr. The job process waits for the fork's exit status and exits
with it, so Snakemake sees an ordinary job. No GPU is touched before the fork.

Without the server (cluster jobs, conda envs, `warm_start: false`) `delegate()`
returns at once and the script runs cold.
"""

import json
import os
import signal
import socket
import struct
import sys

SOCKET_ENV = "LMSWEEP_WARM_SOCKET"
INSIDE_ENV = "LMSWEEP_WARM_CHILD"
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


def _send(conn, obj) -> None:
    data = json.dumps(obj).encode()
    conn.sendall(struct.pack("!I", len(data)) + data)


def _recv(conn):
    header = _recv_exact(conn, 4)
    if header is None:
        return None
    return json.loads(_recv_exact(conn, struct.unpack("!I", header)[0]))


def _recv_exact(conn, n: int):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def delegate(script: str | None = None) -> None:
    """Run this job in the warm server if one is up (never returns then); else return."""
    path = os.environ.get(SOCKET_ENV)
    if not path or os.environ.get(INSIDE_ENV):
        return
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        return  # no server: run cold
    script = script or sys.argv[0]
    request = {"script": os.path.abspath(script), "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}
    data = json.dumps(request).encode()
    socket.send_fds(conn, [struct.pack("!I", len(data)) + data], [0, 1, 2])
    child = _recv(conn)["pid"]
    # Snakemake stops a job by signalling its process: pass that on to the fork.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: os.kill(child, signum))
    reply = _recv(conn)
    sys.exit(1 if reply is None else reply["exit"])


def _run_child(conn, request) -> int:
    """In the fork: become the job, run its script, return its exit status."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[INSIDE_ENV] = "1"
    sys.argv = request["argv"]
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


def serve(path: str, parent: int, preload=PRELOAD, hide_bitsandbytes: bool = True) -> None:
    """Import `preload`, then fork one child per request until `parent` exits."""
    if hide_bitsandbytes:
        sys.modules.setdefault("bitsandbytes", None)
    import importlib

    for name in preload:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path + ".tmp")
    os.rename(path + ".tmp", path)  # clients never see a socket that is not listening
    server.listen(64)
    server.settimeout(1.0)
    while os.getppid() == parent:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        length = struct.unpack("!I", msg[:4])[0]
        while len(msg) < 4 + length:
            msg += conn.recv(4 + length - len(msg))
        request = json.loads(msg[4 : 4 + length])
        pid = os.fork()
        if pid == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            _send(conn, {"pid": os.getpid()})
            code = _run_child(conn, request)
            sys.stdout.flush()
            sys.stderr.flush()
            _send(conn, {"exit": code})
            os._exit(code)
        for fd in fds:
            os.close(fd)
        conn.close()
    server.close()
    os.unlink(path)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), hide_bitsandbytes=sys.argv[3] == "1")

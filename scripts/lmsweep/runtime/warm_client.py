"""Warm start, the job's side: hand this job to the warm server's fork, or return and run cold.

See lmsweep.runtime.warm_server for what the server guarantees. A job script
calls `delegate()` before anything heavy: it sends the server its own script
file, arguments, environment, working directory and standard streams; the
server forks, and the fork runs the script as the job would have, writing to
the job's own stdout/stderr. The job process waits for the fork's exit status
and exits with it, so Snakemake sees an ordinary job. Any failure before the
fork's pid reached the job runs the job cold in its own process, with one line
on stderr; from then on the fork is the job, and a lost connection fails it
(never runs it twice). Without a server (cluster jobs, conda envs,
`warm_start: false`, not Linux) `delegate()` returns at once.
"""

import json
import logging
import os
import signal
import socket
import struct
import sys
import time

from lmsweep.runtime.warm_protocol import INSIDE_ENV, REPLY_TIMEOUT, SOCKET_ENV, is_supported, recv, send
from lmsweep.runtime.warm_protocol import stacks_on_signal

log = logging.getLogger(__name__)


def delegate(script: str | None = None) -> None:
    """Run this job in the warm server if one is up (never returns then); else return and let it run cold."""
    stacks_on_signal()
    path = os.environ.get(SOCKET_ENV)
    if not path or os.environ.get(INSIDE_ENV) or not is_supported():
        return
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(REPLY_TIMEOUT)
        conn.connect(path)
        request = {
            "script": os.path.abspath(script or sys.argv[0]), "argv": sys.argv, "cwd": os.getcwd(),
            "env": dict(os.environ),
        }
        data = json.dumps(request).encode()
        message = struct.pack("!I", len(data)) + data
        sent = socket.send_fds(conn, [message], [0, 1, 2])
        if sent < len(message):
            conn.sendall(message[sent:])
        reply = recv(conn, deadline=time.monotonic() + REPLY_TIMEOUT)
        child = reply["pid"]
        if type(child) is not int or child <= 0:
            raise ValueError(f"not a pid: {child!r}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        conn.close()
        log.warning(f"warm start: no fork from the server at {path} ({type(err).__name__}: {err}); this job runs "
                    "cold")
        return

    # From here on the fork is this job: it must not run a second time here.
    def forward(signum, frame):
        # Snakemake stops a job by signalling its process: pass that on to the fork.
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        send(conn, {"go": True})
        conn.settimeout(None)
        code = recv(conn)["exit"]
        if type(code) is not int:
            raise ValueError(f"not an exit status: {code!r}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.error(f"warm start: lost the job's fork (pid {child}): {type(err).__name__}: {err}; the job failed")
        code = 1
    sys.exit(code)

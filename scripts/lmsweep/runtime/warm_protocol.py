"""The warm start's wire protocol, shared by the job (warm_client) and the server (warm_server).

A message is a 4-byte big-endian length and that many bytes of JSON. The
request carries the job's three standard stream descriptors beside it
(SCM_RIGHTS), so the fork writes to the job's own log.
"""

import json
import struct
import sys
import time

SOCKET_ENV = "LMSWEEP_WARM_SOCKET"
INSIDE_ENV = "LMSWEEP_WARM_CHILD"
# The server serves one request at a time: a client that stalls holds up the
# others for at most REQUEST_TIMEOUT; a job waits REPLY_TIMEOUT for its fork's
# pid (many queued jobs included) before it runs cold.
REQUEST_TIMEOUT = 5.0
REPLY_TIMEOUT = 60.0
MAX_MESSAGE = 16 << 20


def is_supported() -> bool:
    """Fork without exec is safe with these libraries on Linux only (macOS's system libraries are not fork-safe,
    which is why multiprocessing spawns there; Windows has no fork)."""
    return sys.platform.startswith("linux")


def send(conn, obj) -> None:
    data = json.dumps(obj).encode()
    conn.sendall(struct.pack("!I", len(data)) + data)


def recv(conn, deadline=None):
    """One message; ConnectionError on end of stream, TimeoutError past `deadline`, ValueError if malformed."""
    length = struct.unpack("!I", recv_exact(conn, 4, deadline=deadline))[0]
    if length > MAX_MESSAGE:
        raise ValueError(f"a message of {length} bytes announced (at most {MAX_MESSAGE})")
    return json.loads(recv_exact(conn, length, deadline=deadline))


def recv_exact(conn, n: int, buf: bytes = b"", deadline=None) -> bytes:
    while len(buf) < n:
        if deadline is not None:
            # A deadline for the whole message, not per recv(): one byte every few seconds must not hold the server.
            conn.settimeout(max(deadline - time.monotonic(), 1e-3))
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"the other end closed the connection after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def stacks_on_signal() -> None:
    """`kill -USR2 <job pid>` writes every thread's Python stack to the job's log (a job that seems stuck)."""
    import faulthandler
    import signal

    try:
        faulthandler.register(signal.SIGUSR2, file=sys.stderr, all_threads=True)
    except (AttributeError, ValueError, OSError, RuntimeError):  # no SIGUSR2 (Windows), no usable stderr
        pass

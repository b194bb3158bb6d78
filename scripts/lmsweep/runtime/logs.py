"""A job's log: its stdout and stderr (tqdm's bars included) and every lmsweep logger, in one file.

Modules log through `logging.getLogger(__name__)`; a warning reads
"warning: ..." in the log, as people grep for it. A job sends everything to
the log file Snakemake names (log_to); a step run by hand logs to the
terminal (to_terminal).
"""

import logging
import sys
from pathlib import Path


class Formatter(logging.Formatter):
    """The message alone, with 'warning: ' or 'error: ' before it above INFO."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


_ours = []  # the handlers this module gave the root logger: replaced, never doubled; others' are kept


def _handle(*streams) -> None:
    root = logging.getLogger()
    for handler in _ours:
        root.removeHandler(handler)
    _ours.clear()
    for stream in streams:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(Formatter("%(message)s"))
        root.addHandler(handler)
        _ours.append(handler)
    root.setLevel(logging.INFO)


def log_to(path, also_terminal: bool = False) -> None:
    """Send this process's stdout, stderr and logging to the job's log file (appended, line-buffered);
    with `also_terminal`, the log lines to the terminal too (prefetch: downloads take long)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stderr
    stream = open(path, "a", buffering=1)
    sys.stdout = sys.stderr = stream
    _handle(stream, *([terminal] if also_terminal else []))


def to_terminal() -> None:
    """Logging to stderr, for a step run by hand."""
    _handle(sys.stderr)

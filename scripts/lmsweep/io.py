"""Writing outputs atomically, in the modes the umask gives, and reading them back.

Outputs are written to a temporary name beside the target and renamed into
place, so a job killed part way never leaves a file that looks finished.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def umask() -> int:
    """The process's file mode creation mask (reading it means setting it: set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, is_dir: bool = False):
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    The temporary file or folder gets the mode any new file gets under the
    umask (tempfile makes them 0600 and 0700, which the rename would keep: a
    study folder shared by a group would be unreadable to it). So does every
    file and folder written inside a folder: safetensors writes its files
    0600 (through a temporary file of its own), so a model folder's weights
    were unreadable to the group while its config was not.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        tmp.chmod(0o777 & ~umask())
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o666 & ~umask())
    try:
        yield tmp
        if is_dir:
            _umask_modes(tmp)
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _umask_modes(folder: Path) -> None:
    """Every file and folder under `folder` in the mode a new one gets under the umask (execute bits kept)."""
    mask = umask()
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            target = os.path.join(root, name)
            if not os.path.islink(target):
                os.chmod(target, (0o666 | (os.stat(target).st_mode & 0o111)) & ~mask)


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path, rows) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def read_jsonl(path) -> list:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sha256_file(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()

"""What identifies a base model's weights, so that a change of them reruns what was built from them.

Snakemake reruns a job when its params change. A model given by name does not
change its name when its weights change, so every model job gets, beside the
name, a `source` param read when the run starts:

- a local folder: a fingerprint of its files (path, size and modification time
  of each, and the content of the small ones: config, tokenizer), so that new
  weights copied into the folder rerun the adapter and everything after it;
- a Hub id: the commit of the snapshot in the local Hugging Face cache for the
  configured revision (`main` when none), which the jobs then load, so that
  what was recorded is what ran. When the cache moves to a new commit (a
  download of a newer `main`), the jobs rerun; a `revision` pinned to a commit
  never moves. A model not yet in the cache has no commit until it is fetched:
  run `snakemake --cores 1 prefetch` before the study (the run warns
  otherwise), or its jobs will rerun once, on the run after the download.

Nothing here reaches the network, and nothing imports torch: it runs while
Snakemake reads the workflow, on every invocation.
"""

import hashlib
import os
from pathlib import Path

from lmsweep.sources import is_local

# Files up to this size are hashed by content; larger ones (weights) by size and time.
CONTENT_HASH_BYTES = 4 << 20


def is_local_folder(name_or_path: str) -> bool:
    """A model folder on this machine (lmsweep.sources' rule), which is fingerprinted rather than resolved."""
    return is_local(name_or_path) and os.path.isdir(os.path.expanduser(name_or_path))


def folder_fingerprint(folder) -> str:
    """sha256 over every file of `folder`: relative path, size, and content (small files) or mtime (large)."""
    folder = Path(os.path.expanduser(folder))
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0".encode())
        if stat.st_size <= CONTENT_HASH_BYTES:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def hub_commit(repo_id: str, revision: str | None, hf_home: str | None = None) -> str | None:
    """The commit of the cached snapshot of `repo_id` at `revision`, or None when it is not cached."""
    from lmsweep.hubcache import cache_dirs, snapshot_dir

    hub_cache, _ = cache_dirs(hf_home)
    snapshot = snapshot_dir(repo_id, revision, hub_cache)
    return snapshot.name if snapshot is not None else None


def describe(name_or_path: str, revision: str | None = None, hf_home: str | None = None) -> dict:
    """{kind, fingerprint or commit}: the `source` param of a model's jobs."""
    if is_local_folder(name_or_path):
        return {"kind": "folder", "fingerprint": folder_fingerprint(name_or_path)}
    return {"kind": "hub", "commit": hub_commit(name_or_path, revision, hf_home)}

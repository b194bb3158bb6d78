"""What a run says while Snakemake reads the workflow, before any job: on the submit host only.

- what offline cluster jobs would miss from the Hugging Face cache;
- intermediate outputs deleted while what was made from them is still there
  (Snakemake keeps what exists and would not rebuild them), with the command
  that does, found in Snakemake's own records of what each output was made
  from: no copy of the DAG to keep in step with the rules;
- results whose records are gone (.snakemake/ deleted), so that a changed
  setting would rerun nothing;
- that --report packages the results as they are.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

METADATA = Path(".snakemake") / "metadata"  # Snakemake's file persistence backend (its default)


def _logger():
    from snakemake.logging import logger

    return logger


def on_submit_host(workflow) -> bool:
    return not (workflow.remote_exec or workflow.subprocess_exec)


def warn_uncached(workflow, config: dict) -> None:
    """Say early, on the submit host, what offline jobs would miss, and what has no commit to pin yet."""
    from lmsweep import hubcache

    items = hubcache.needs(config)
    if items and on_submit_host(workflow):
        lacking = hubcache.missing(items, *hubcache.cache_dirs(config.get("hf_home")))
        if lacking:
            _logger().warning(
                f"not yet in the Hugging Face cache: {', '.join(i.describe() for i in lacking)}. "
                "Jobs on a cluster run offline: run `snakemake --cores 1 prefetch` here first. "
                "Jobs record the snapshot commit they load only for cached models: a model downloaded by "
                "its first job reruns its jobs once, on the next run."
            )


def records(folder: Path = METADATA):
    """(output, recorded inputs) of every output Snakemake has a record of (file backend)."""
    if not folder.is_dir():
        return
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        # A long id is split into folders named @<part> (snakemake.persistence.file._record_path).
        encoded = "".join(p.removeprefix("@") for p in path.relative_to(folder).parts)
        try:
            output = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            inputs = json.loads(path.read_text()).get("input") or []
        except (ValueError, OSError, UnicodeDecodeError, AttributeError):
            continue
        yield output, inputs


def deleted_intermediates(folder: Path = METADATA) -> list:
    """Outputs of the workflow (under results/) that are gone while an output made from them is still there."""
    deleted = set()
    for output, inputs in records(folder):
        if os.path.exists(output):
            deleted.update(i for i in inputs if i.startswith("results/") and not os.path.exists(i))
    return sorted(deleted)


def warn_deleted(workflow) -> None:
    """Name the outputs deleted while what was made from them is still there, and how to rebuild them.

    Snakemake leaves such a file missing (the files made from it look up to
    date, and nothing asks for it again), so deleting an intermediate output
    does not rebuild it by itself; --forcerun does, with everything made from it.
    """
    if not on_submit_host(workflow):
        return
    deleted = deleted_intermediates()
    if deleted:
        shown = " ".join(deleted[:20]) + (" ..." if len(deleted) > 20 else "")
        _logger().warning(
            f"{len(deleted)} output(s) were deleted, but what was made from them is still there, so Snakemake "
            f"will not rebuild them: {shown}\nTo rebuild them and everything made from them, run again with "
            f"--forcerun {shown}"
        )


def warn_unrecorded(workflow) -> None:
    """Results exist, but Snakemake's record of how they were made is gone (.snakemake/ deleted or the
    results copied without it): then no changed setting, script or code reruns anything. Say so."""
    from snakemake.settings.types import PersistenceBackend

    made = "results/prepare_data/manifest.json"
    if not on_submit_host(workflow) or not os.path.exists(made):
        return
    if workflow.workflow_settings.persistence_backend == PersistenceBackend.FILE:
        record = METADATA / base64.urlsafe_b64encode(made.encode()).decode()
    else:
        record = Path(".snakemake") / "metadata.db"
    if not record.exists():
        _logger().warning(
            "results/ holds outputs, but Snakemake's record of how they were made is gone (.snakemake/ was "
            "deleted, or the results were copied without it). Snakemake cannot see a changed setting, script or "
            "lmsweep code for them now, so nothing of that reruns by itself. If anything changed since they were "
            "made, bring them up to date with `snakemake --cores 1 --forceall` (everything) or `--forcerun <rule>`."
        )


def note_report_mode() -> None:
    """`snakemake --report` packages results/ as it is: it runs no job, stale or not."""
    if "--report" in sys.argv and os.path.exists("results"):
        _logger().warning(
            "--report packages the results as they are now: it reruns nothing. If the config, the data or the "
            "code changed since the last run, `snakemake -n` lists what is out of date; run `snakemake --cores 1` "
            "first to bring the results up to date."
        )


def hub_environment(workflow, config: dict) -> dict:
    """Environment of every process of the run: the study's cache, and offline on cluster nodes.

    The jobs Snakemake starts inherit it (sbatch exports it); a job on a cluster
    node parses the workflow again, with --mode remote, and never reaches for the network.
    """
    from lmsweep import hubcache

    env = hubcache.cache_env(config["hf_home"]) if config.get("hf_home") else {}
    if workflow.remote_exec:
        env.update(hubcache.OFFLINE_ENV)
    return env


def at_parse(workflow, config: dict) -> None:
    """Everything the Snakefile does while it is read, in order."""
    os.environ.update(hub_environment(workflow, config))
    warn_uncached(workflow, config)
    warn_deleted(workflow)
    warn_unrecorded(workflow)
    note_report_mode()

"""A job, run: what scripts/<rule>.py hands over, in the order every job keeps.

    claim its GPUs (a local run on a machine with several) -> a step's own launch (finetune on several GPUs)
    -> hand itself to the warm server's fork -> log to the job's file -> the step's run()

A Snakemake job brings its settings (the rule's `settings` param, built by
lmsweep.wiring and passed as a mapping, which Snakemake compares between runs,
then typed again here) and its named inputs and outputs; a job run by hand builds
the same from the config and its wildcards (lmsweep.runtime.cli).
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from dataclasses import dataclass


@dataclass
class Job:
    rule: str
    settings: object  # the step's Settings
    paths: object  # the step's Paths
    threads: int = 1
    log: str | None = None  # the job's log file (None: the terminal)
    gpus: int = 0  # the job's `gpu` resource


def step_of(rule: str):
    return importlib.import_module(f"lmsweep.steps.{rule}")


def _value(kind, value):
    """A Snakemake input or output (a string, or a Namedlist) as the Paths field's type wants it."""
    if isinstance(value, str):
        return value
    items = [str(v) for v in value]
    if kind is str:
        if len(items) != 1:
            raise ValueError(f"expected one path, got {items}")
        return items[0]
    return items


def paths_from(paths_class, smk):
    """The step's Paths from a Snakemake job's named inputs and outputs (the rule names them alike)."""
    hints = typing.get_type_hints(paths_class)
    values = {}
    for field in dataclasses.fields(paths_class):
        for group in (smk.output, smk.input):
            if field.name in group.keys():
                values[field.name] = _value(hints[field.name], getattr(group, field.name))
                break
        else:
            raise KeyError(f"rule {smk.rule} has no input or output named {field.name!r} "
                           f"({paths_class.__module__}.Paths needs it)")
    return paths_class(**values)


def from_snakemake(rule: str, smk) -> Job:
    from lmsweep.settings import from_mapping

    step = step_of(rule)
    settings = from_mapping(step.Settings, smk.params.settings, f"rule {rule}'s settings")
    return Job(rule, settings, paths_from(step.Paths, smk), smk.threads,
               smk.log[0] if smk.log else None, int(smk.resources.get("gpu", 0) or 0))


def execute(job: Job, warm: bool = True):
    """Run `job` as every job runs: claims, launch, warm fork, log, the step. A job built by hand, or a
    training process that accelerate started, is not handed to the warm server (`warm`)."""
    from lmsweep.runtime import gpus, logs, warm_client

    step = step_of(job.rule)
    logs.to_terminal()  # until the job's log is open: the claim and the launch are said where the job started
    if job.gpus:
        claim = getattr(step, "gpus_to_claim", None)
        gpus.claim(claim(job.settings, job.gpus) if claim else job.gpus)
    if hasattr(step, "before_delegate"):
        step.before_delegate(job)
    if warm and getattr(step, "WARM", True):
        warm_client.delegate()
    if job.log:
        logs.log_to(job.log, also_terminal=getattr(step, "LOG_TO_TERMINAL", False))
    return step.run(job.settings, job.paths, job.threads)


def main(rule: str, smk=None):
    """scripts/<rule>.py: a Snakemake job when Snakemake runs the script, else the command line."""
    if smk is None:
        from lmsweep.runtime import cli

        job = cli.job_from_command_line(rule)
        if job is None:
            return None
        try:
            return execute(job, warm=False)
        except Exception as err:
            if not is_lmsweep_error(err):
                raise
            # lmsweep's own errors name the problem and the fix: said as a command line says it, no traceback
            raise SystemExit(f"error: {err}") from None
    return execute(from_snakemake(rule, smk))


def is_lmsweep_error(err: BaseException) -> bool:
    """An error lmsweep raised on purpose (its class is lmsweep's): its message is meant for the user."""
    return type(err).__module__.split(".")[0] == "lmsweep"

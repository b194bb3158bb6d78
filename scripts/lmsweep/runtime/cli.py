"""A step run by hand: one command line for every rule, built from the same config and wildcards as the rule.

    python scripts/<rule>.py [--directory DIR] [--config FILE] --<wildcard> VALUE ... [--threads N] [--show]
    python scripts/<rule>.py --job FILE

The job is built exactly as the workflow builds it (lmsweep.wiring): the
config is read and checked as the Snakefile checks it (its defaults are the
schema's, lmsweep.configcheck), the wildcards name the job (`--model` and so
on, as in the rule's output paths), and the paths are the rule's, under
--directory as Snakemake's own --directory takes them. No default lives
here. `--show` prints the job (settings and paths, JSON) instead of running
it; `--job FILE` runs a job written that way (how finetune's training
processes on several GPUs get theirs).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

from lmsweep.runtime.job import Job, step_of
from lmsweep.settings import SettingsError, from_mapping

SCHEMA = Path(__file__).resolve().parents[3] / "config.schema.yaml"


def wildcards_of(rule: str) -> tuple:
    from lmsweep.wiring.jobs import JOBS

    return JOBS[rule].wildcards


def parser_for(rule: str, step) -> argparse.ArgumentParser:
    first_line = (step.__doc__ or "").strip().splitlines()[0] if step.__doc__ else rule
    parser = argparse.ArgumentParser(
        prog=f"scripts/{rule}.py", description=first_line + "\n\n" + (__doc__ or "").split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--directory", default=".", help="the study's folder (as snakemake --directory); default: .")
    parser.add_argument("--config", default="config.yaml", help="the study's config, in --directory; "
                                                                 "default: config.yaml")
    for wildcard in wildcards_of(rule):
        if wildcard == "adaptation":
            parser.add_argument("--adaptation", help="the adapter's adaptation config (adaptation.sweep, e.g. r_4); "
                                                     "default: the baseline adapter")
            continue
        parser.add_argument(f"--{wildcard}", help=f"the job's {wildcard}, as in the rule's output path")
    for flag in getattr(step, "CLI_FLAGS", ()):
        parser.add_argument(f"--{flag.replace('_', '-')}", action="store_true", dest=flag,
                            help=f"set the step's setting {flag} (off in the workflow)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the job (default: 1, or the job file's)")
    parser.add_argument("--show", action="store_true", help="print the job (settings and paths) instead of running it")
    parser.add_argument("--job", help="run the job in this JSON file (written by --show or by a step)")
    return parser


def load_config(path: str) -> dict:
    """The study's config, checked as the Snakefile checks it; its mistakes, one line each, are an error."""
    import yaml

    from lmsweep.configcheck import config_problems

    if not os.path.isfile(path):
        raise SystemExit(f"error: no config file {path} in {os.getcwd()}: give --config (and --directory)")
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    problems = config_problems(config, yaml.safe_load(SCHEMA.read_text()), [path])
    if problems:
        raise SystemExit("config error (nothing was run):\n  - " + "\n  - ".join(problems))
    return config


def job_as_mapping(job: Job) -> dict:
    return {"rule": job.rule, "settings": asdict(job.settings), "paths": asdict(job.paths), "threads": job.threads}


def write_job(job: Job, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(job_as_mapping(job), indent=2, sort_keys=True) + "\n")


def read_job(rule: str, path) -> Job:
    step = step_of(rule)
    data = json.loads(Path(path).read_text())
    if data.get("rule") != rule:
        raise SystemExit(f"error: {path} is a job of rule {data.get('rule')!r}, not {rule!r}")
    try:
        return Job(rule, from_mapping(step.Settings, data["settings"], "settings"),
                   from_mapping(step.Paths, data["paths"], "paths"), int(data.get("threads", 1)))
    except (SettingsError, KeyError) as err:
        raise SystemExit(f"error: {path} does not hold a job of rule {rule}: {err}") from None


def job_from_command_line(rule: str, argv=None) -> Job | None:
    """The job the command line names; None when it only printed it (--show)."""
    from lmsweep.adaptation import SEPARATOR
    from lmsweep.wiring import Study, Wildcards

    step = step_of(rule)
    wildcards = wildcards_of(rule)
    parser = parser_for(rule, step)
    args = parser.parse_args(argv)
    if args.job:
        job = read_job(rule, args.job)
        job.threads = args.threads or job.threads
        return job
    missing = [f"--{w}" for w in wildcards if getattr(args, w) is None and w != "adaptation"]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    if not os.path.isdir(args.directory):
        parser.error(f"argument --directory: {args.directory} is not a folder")
    os.chdir(args.directory)
    study = Study(load_config(args.config))
    given = {w: str(getattr(args, w)) for w in wildcards if getattr(args, w) is not None}
    for name, known in (("model", study.models), ("variant", study.variants), ("decoding", list(study.decoding)),
                        ("adaptation", list(study.adaptations))):
        if name in given and given[name] not in known:
            parser.error(f"argument --{name}: {given[name]!r} is not one of the study's: {', '.join(known) or 'none'}")
    if "adaptation" in given:
        given["adaptation"] = SEPARATOR + given["adaptation"]
    wc = Wildcards(**given)
    if "rep" in wildcards and not wc.rep.isdigit():
        parser.error(f"argument --rep: {wc.rep!r} is not a replicate number (0, 1, ...)")
    settings = study.settings(rule, wc)
    flags = {f: True for f in getattr(step, "CLI_FLAGS", ()) if getattr(args, f)}  # a setting the workflow leaves off
    job = Job(rule, replace(settings, **flags), study.paths(rule, wc), args.threads or 1)
    if args.show:
        print(json.dumps(job_as_mapping(job), indent=2, sort_keys=True))
        return None
    return job

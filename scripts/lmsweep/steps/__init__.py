"""One module per rule, named after it: the step's logic behind a typed signature.

Each module holds:

- `Settings`: the rule's typed settings (its `settings` param);
- `Paths`: the rule's named inputs and outputs, as the rule names them;
- `run(settings, paths, threads)`: the work, returning the record it wrote.

Both are built for one job by lmsweep.wiring.jobs, from the config and the
job's wildcards, apart from the step's code: lmsweep.codedigest digests the
step module and what it imports, so an edit here reruns the rule's jobs and
an edit of the wiring reruns only the jobs whose settings or paths change.
scripts/<rule>.py hands a Snakemake job to lmsweep.runtime.job, which calls
`run`; the same job built by hand goes through lmsweep.runtime.cli. A module
here imports its libraries inside `run`: the workflow imports it to build
settings while it is read, and every job is a fresh process.
"""

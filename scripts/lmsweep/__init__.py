"""lmsweep: the logic behind the workflow's steps, as plain importable functions.

steps/ holds one module per rule (its typed Settings and Paths, and run());
wiring/ builds each job's settings and paths from the config; runtime/ runs a
job (the script adapter, the command line, logs, GPU claims, the warm fork
server) and what a run does at its start. Only runtime.notices and
runtime.start, which the Snakefile calls with its `workflow`, use snakemake
(its logger and settings types); nothing a step computes with imports it.
Each module imports its heavy libraries (torch, transformers, peft, trl)
inside the functions that need them, because every Snakemake job is a fresh
Python process.
"""

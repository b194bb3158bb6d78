"""lmsweep: the logic behind the workflow's steps, as plain importable functions.

Nothing in this package imports snakemake; each module imports its heavy
libraries (torch, transformers, peft, trl) inside the functions that need them,
because every Snakemake job is a fresh Python process.
"""

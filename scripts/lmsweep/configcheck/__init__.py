"""Config mistakes, said in one line each: the key, the bad value, what is allowed.

`config_problems` lists every mistake at once, before any job runs: schema
errors (Snakemake's validate() stops at the first and prints the whole
sub-schema), keys given twice in a config file, non-finite numbers, and what a
schema cannot express (names that refer to each other, files, sizes, module
names, context lengths). A semantic check whose inputs the schema already
refused is skipped, so one mistake is said once.
"""

import os

from lmsweep.configcheck.machine import cuda_visible, local_gpu_problems
from lmsweep.configcheck.schema import describe, duplicate_key_problems, nonfinite_numbers, schema_errors
from lmsweep.configcheck.study import local_model_config, study_problems

__all__ = ["config_problems", "cuda_visible", "describe", "local_gpu_problems", "local_model_config",
           "schema_errors", "study_problems"]


def config_problems(config: dict, schema: dict, config_files=()) -> list:
    """Every mistake of `config` (loaded from `config_files`), one line each; fills in the schema's defaults."""
    nonfinite = dict(nonfinite_numbers(config))
    errors = [e for e in schema_errors(config, schema) if tuple(e.absolute_path) not in nonfinite]
    problems = [describe(e) for e in errors]
    problems += [
        f"{'.'.join(map(str, path))}: {value} is not a finite number (YAML's .inf or .nan); give a finite value"
        for path, value in nonfinite.items()
    ]
    # The Snakefile's config.yaml and the same file given again with --configfile are one file.
    files = {}
    for path in config_files:
        files.setdefault(os.path.realpath(path), str(path))
    for path in files.values():
        problems += duplicate_key_problems(path)
    # An unknown key leaves the values beside it usable; any other error makes its value unusable.
    invalid = {tuple(e.absolute_path) for e in errors if e.validator not in ("additionalProperties", "propertyNames")}
    return problems + study_problems(config, invalid | set(nonfinite))

# Wiring only: the config checked, the study's targets, and what each rule's jobs read and are given.
# The paths, settings and targets themselves are built by lmsweep.wiring (scripts/lmsweep/wiring/),
# which a step run by hand uses too; every setting a job depends on reaches it through params:, so that
# a change reruns exactly the jobs whose settings changed.

import os
import re
import sys

from snakemake.exceptions import WorkflowError

sys.path.insert(0, os.path.join(workflow.basedir, "scripts"))

import yaml
from snakemake.utils import validate

from lmsweep import wiring
from lmsweep.codedigest import rule_code
from lmsweep.configcheck import config_problems
from lmsweep.settings import as_mapping

# Every mistake at once: schema and semantic checks, and keys given twice in the config files Snakemake
# read (PyYAML keeps the last of two equal keys silently). This fills in the schema's defaults;
# validate() then passes and stays the last word.
with open(os.path.join(workflow.basedir, "config.schema.yaml")) as _schema:
    _problems = config_problems(config, yaml.safe_load(_schema), workflow.configfiles)
if _problems:
    raise WorkflowError(
        "config error (nothing was run):\n  - " + "\n  - ".join(_problems)
    )
validate(config, "../config.schema.yaml")

STUDY = wiring.Study(config)


def alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    model=alternatives(STUDY.models),
    # '' (the baseline adapter) or '@<adaptation config>': results/finetune/<model>@r_4/ (lmsweep.adaptation)
    adaptation=(
        f"(?:@(?:{alternatives(STUDY.adaptations)}))?" if STUDY.adaptations else "(?:)"
    ),
    variant=alternatives(STUDY.variants),
    decoding=alternatives(STUDY.decoding),
    rep=r"\d+",


def code_of(rule):
    """{module: digest} of the lmsweep code the rule's step runs (lmsweep.codedigest): a param, so that an
    edit of that code reruns the rule's jobs, and only theirs (Snakemake's `code` trigger sees the script).
    """
    return rule_code(rule, os.path.join(workflow.basedir, "scripts"))


def settings_of(rule):
    """The settings of the rule's jobs (its step's Settings, lmsweep.steps.<rule>) as a plain mapping:
    Snakemake compares params it can repr (a dict, not a dataclass), so a changed setting reruns the job.
    """
    return lambda wildcards: as_mapping(STUDY.settings(rule, wildcards))


def inputs_of(rule, *names):
    """The named inputs of a job, as its step's paths() gives them."""
    return lambda wildcards: {
        name: getattr(STUDY.paths(rule, wildcards), name) for name in names
    }


def resource(rule, key):
    """A rule's resource from the config (its default is the schema's)."""
    return config["resources"][rule][key]


def gpus():
    return config["resources"]["gpu_per_job"]

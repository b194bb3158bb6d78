"""The workflow on a real SLURM cluster, through profiles/slurm.

The cluster tests (marker `slurm`, root only) start the single-node test
cluster of tests/slurm/ (stopped again at the end, whatever happens) and run
the reduced study of conftest (one tiny model, two decoding configs, 8 test
prompts, merged weights; 8 SLURM jobs) through

    snakemake --workflow-profile profiles/slurm --profile tests/slurm/profile

with one score job made to fail by an injected fault: the run stops non-zero,
and a rerun without the fault finishes only what was left. Then they check
what sacct recorded, what the jobs saw, and that every result equals the
local run's byte for byte (the reduced run of conftest: a second run from
scratch, on other machinery). A status loop that never ended would hang the
run: the failing run is bounded by what can be counted, SLURM's own attempts
of the failing job (the profile's `retries: 1`).

    python -m pytest tests/workflow/test_slurm.py -m slurm
"""

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO, digests, reduced_config

CLUSTER = REPO / "tests" / "slurm"
# The rules that stay on the submit host (localrules in the Snakefile); `all` is local by nature.
LOCAL_RULES = {"prefetch", "prepare_data", "build_tiny_model", "check_scores", "aggregate", "compare", "report", "all"}
# The job made to fail: the last of its chain, so the rerun has one SLURM job to do.
FAULTY_JOB = "rule_score_wildcards_tiny_llama_finetuned_top_k_10_0"
FAULT = "score.py:results/score/tiny_llama/finetuned/top_k_10/rep0.json"  # script:output of the job
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")

# Put on PYTHONPATH of the SLURM runs: every job script (a .snakemake/scripts/
# copy) records the environment it runs in, and the one named by
# $LMSWEEP_TEST_FAULT (script:output) fails as a broken job would.
PROBE = '''
import json, os, sys

def _probe():
    script = sys.argv[0] if sys.argv else ""
    if "/.snakemake/scripts/" not in script:
        return
    keys = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "SLURM_JOB_ID")
    record = {"script": os.path.basename(script).split(".", 1)[1], **{k: os.environ.get(k) for k in keys}}
    with open(os.path.join(os.environ["LMSWEEP_TEST_PROBE"], f"{os.getpid()}.json"), "w") as fh:
        json.dump(record, fh)
    fault = os.environ.get("LMSWEEP_TEST_FAULT")
    if fault:
        name, output = fault.split(":", 1)
        if script.endswith("." + name) and output.encode() in open(script, "rb").read():
            sys.stderr.write(f"injected fault: this job writes {output}\\n")
            sys.stderr.flush()
            os._exit(3)

_probe()
'''


def clean_env(**extra) -> dict:
    """This process's environment without Hub offline switches, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARS}
    env.update(extra)
    return env


# Polls (a second apart) a run may go on after SLURM holds none of its jobs: the profile checks the status of
# its jobs every 10 s, so a run that has not ended long after its last job did is stuck in its status loop.
IDLE_POLLS = 180


def slurm_jobs(run_ids) -> tuple:
    """(jobs SLURM ever had of these snakemake runs, jobs it holds now: pending, running or completing)."""
    if not run_ids:
        return 0, 0
    names = ",".join(run_ids)
    ever = subprocess.run(["sacct", "-n", "-X", "-P", "-S", "now-3hours", "--name", names, "-o", "JobID"],
                          capture_output=True, text=True).stdout.split()
    held = subprocess.run(["squeue", "-h", "--name", names, "-o", "%i"], capture_output=True, text=True).stdout.split()
    return len(ever), len(held)


def snakemake(workdir: Path, *args, env=None):
    """`snakemake` on the workflow in REPO in `workdir`; its output (also kept in a file there) as .text.

    Watched by counting: once SLURM has had jobs of the run and holds none, the run must end within IDLE_POLLS
    polls, or it is stopped and fails the test (a status loop that never ends would hang CI)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           *args]
    out = workdir / f"snakemake-{time.monotonic_ns()}.out"
    idle = 0
    with out.open("w") as stream:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=stream, stderr=subprocess.STDOUT, env=env or clean_env())
        while proc.poll() is None:
            ever, held = slurm_jobs(re.findall(r"SLURM run ID: (\S+)", out.read_text()))
            idle = idle + 1 if ever and not held else 0
            if idle > IDLE_POLLS:
                proc.kill()
                proc.wait()
                raise AssertionError(f"snakemake still ran {IDLE_POLLS} polls after SLURM held none of its jobs:\n"
                                     f"{out.read_text()[-6000:]}")
            time.sleep(1)
    proc.text = out.read_text()
    return proc


def check(proc) -> None:
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.text[-8000:]}")


def planned_jobs(text: str) -> collections.Counter:
    """(rule, wildcard values joined by _) -> count, from a dry run's job listing."""
    jobs, rule, wildcards = collections.Counter(), None, ""
    for line in text.splitlines() + [""]:
        start = re.match(r"^(?:local)?rule (\w+):$", line)
        if start or not line.strip():
            if rule:
                jobs[(rule, wildcards)] += 1
            rule, wildcards = (start.group(1), "") if start else (None, "")
        elif rule and (found := re.match(r"^\s+wildcards: (.*)$", line)):
            wildcards = "_".join(pair.split("=", 1)[1] for pair in found.group(1).split(", "))
    return jobs


def slurm_comment(rule: str, wildcards: str) -> str:
    """The --comment the slurm executor plugin gives a job."""
    return f"rule_{rule}_wildcards_{wildcards}" if wildcards else f"rule_{rule}"


def sacct_rows(run_ids, polls=60) -> list:
    """sacct's records of the jobs of these snakemake runs (job name = run id), once all are final (sacct
    asked up to `polls` times, a second apart)."""
    for _ in range(polls):
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-S", "now-3hours", "--name", ",".join(run_ids),
             "-o", "JobID,Comment,State,AllocTRES"],
            capture_output=True, text=True, check=True,
        ).stdout
        rows = [dict(zip(("id", "comment", "state", "tres"), line.split("|"))) for line in out.splitlines() if line]
        if rows and all(r["state"] not in ("PENDING", "RUNNING", "COMPLETING") for r in rows):
            return rows
        time.sleep(1)
    raise AssertionError(f"sacct did not settle in {polls} polls:\n{out}")


# ---------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    """The test cluster, up; stopped at the end even when a test fails (its state is kept for the next start)."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root (tests/slurm/start-cluster.sh)")
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("the SLURM test cluster needs Debian's slurm packages (or apt-get to install them)")
    started = subprocess.run([str(CLUSTER / "start-cluster.sh")], capture_output=True, text=True)
    run_ids = []
    try:
        assert started.returncode == 0, f"start-cluster.sh failed:\n{started.stdout}\n{started.stderr}"
        yield SimpleNamespace(run_ids=run_ids)
    finally:
        for run_id in run_ids:  # a killed snakemake leaves its jobs behind
            subprocess.run(["scancel", "--name", run_id], capture_output=True)
        subprocess.run([str(CLUSTER / "stop-cluster.sh")], capture_output=True)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The reduced study on SLURM: a run with one failing job, then the rerun that finishes it."""
    workdir = tmp_path_factory.mktemp("slurm")
    probe = workdir / "probe"
    (probe / "records").mkdir(parents=True)
    (probe / "sitecustomize.py").write_text(PROBE)
    hf_home = workdir / "hf-home"
    (workdir / "config.yaml").write_text(yaml.safe_dump(reduced_config(hf_home), sort_keys=False))
    profile = ["--workflow-profile", str(REPO / "profiles" / "slurm"), "--profile", str(CLUSTER / "profile"),
               # The profile polls like a real cluster wants (first check after 40 s, then
               # 10 s later each round nothing finished); these jobs take 15-25 s. Options the
               # workflow profile sets can only be overridden on the command line.
               "--slurm-init-seconds-before-status-checks", "8"]
    env = clean_env(PYTHONPATH=os.pathsep.join(filter(None, [str(probe), os.environ.get("PYTHONPATH")])),
                    LMSWEEP_TEST_PROBE=str(probe / "records"))

    planned = snakemake(workdir, *profile, "--dry-run", env=env)
    check(planned)
    failing = snakemake(workdir, *profile, env={**env, "LMSWEEP_TEST_FAULT": FAULT})
    cluster.run_ids += re.findall(r"SLURM run ID: (\S+)", failing.text)
    left = snakemake(workdir, *profile, "--dry-run", env=env)
    check(left)
    rerun = snakemake(workdir, *profile, env=env)
    cluster.run_ids += re.findall(r"SLURM run ID: (\S+)", rerun.text)
    check(rerun)
    records = [json.loads(p.read_text()) for p in (probe / "records").glob("*.json")]
    return SimpleNamespace(
        workdir=workdir, hf_home=hf_home, planned=planned_jobs(planned.text), failing=failing,
        left=planned_jobs(left.text), rerun=rerun, records=records,
        rows=sacct_rows(list(cluster.run_ids)),
    )


@pytest.mark.slurm
def test_a_failing_job_stops_the_run_nonzero_after_its_retry(slurm_run):
    failing = slurm_run.failing
    assert failing.returncode not in (0, 124, 137), failing.text[-4000:]  # failed by itself, not killed
    # Snakemake names the job's SLURM log, where the error is (the rule's own log stayed empty).
    slurm_logs = re.findall(r"(\S+/\.snakemake/slurm_logs/rule_score/tiny_llama_finetuned_top_k_10_0/\d+\.log)",
                            failing.text)
    assert slurm_logs and all("injected fault" in Path(log).read_text() for log in set(slurm_logs))
    failed = [r for r in slurm_run.rows if r["state"] != "COMPLETED"]
    # The profile's `retries: 1`: the job was submitted twice, failed twice, and nothing else failed.
    assert [(r["comment"], r["state"]) for r in failed] == [(FAULTY_JOB, "FAILED")] * 2, failed


@pytest.mark.slurm
def test_the_rerun_finishes_only_what_the_failure_left(slurm_run):
    # keep-going: everything independent of the failed job was done in the failing run.
    assert slurm_run.left == {
        ("score", "tiny_llama_finetuned_top_k_10_0"): 1, ("check_scores", ""): 1, ("aggregate", ""): 1,
        ("compare", ""): 1, ("report", ""): 1, ("all", ""): 1,
    }
    assert (slurm_run.workdir / FAULT.split(":")[1]).exists()
    assert "Nothing to be done" in snakemake(slurm_run.workdir, "--dry-run", env=clean_env()).text


@pytest.mark.slurm
def test_every_cluster_job_completed_once_on_slurm_and_local_rules_stayed_local(slurm_run):
    remote = collections.Counter(
        {slurm_comment(rule, wc): n for (rule, wc), n in slurm_run.planned.items() if rule not in LOCAL_RULES})
    assert sum(remote.values()) == 8 and set(remote.values()) == {1}
    completed = collections.Counter(r["comment"] for r in slurm_run.rows if r["state"] == "COMPLETED")
    assert completed == remote
    planned_local = {rule for rule, _ in slurm_run.planned if rule in LOCAL_RULES}
    assert planned_local == {"prepare_data", "build_tiny_model", "check_scores", "aggregate", "compare", "report",
                             "all"}
    ran_local = set(re.findall(r"^localrule (\w+):$", slurm_run.failing.text + slurm_run.rerun.text, re.M))
    assert ran_local == planned_local
    assert not {c for c in completed
                if re.match(r"rule_(prepare_data|build_tiny_model|check_scores|aggregate|compare|report)", c)}


@pytest.mark.slurm
def test_gpu_rules_asked_slurm_for_a_gpu(slurm_run):
    gpu_rules = {"finetune", "merge_adapter", "generate", "score", "perplexity"}
    rows = [r for r in slurm_run.rows if r["comment"].split("_wildcards_")[0][len("rule_"):] in gpu_rules]
    assert len(rows) == len(slurm_run.rows) == 10  # 8 jobs + the faulty one's 2 failed attempts
    assert all("gres/gpu=1" in r["tres"] for r in rows), [(r["comment"], r["tres"]) for r in rows]


@pytest.mark.slurm
def test_cluster_jobs_ran_offline_on_the_configured_cache(slurm_run):
    on_nodes = [r for r in slurm_run.records if r["SLURM_JOB_ID"]]
    here = [r for r in slurm_run.records if not r["SLURM_JOB_ID"]]
    assert {r["script"] for r in on_nodes} == {"finetune.py", "merge_adapter.py", "generate.py", "score.py",
                                               "perplexity.py"}
    assert {r["script"] for r in here} == {"prepare_data.py", "build_tiny_model.py", "check_scores.py", "aggregate.py",
                                           "compare.py", "report.py"}
    for record in on_nodes:
        assert all(record[var] == "1" for var in OFFLINE_VARS), record
    for record in slurm_run.records:
        assert record["HF_HOME"] == str(slurm_run.hf_home), record
    for record in here:  # the submit host keeps the network (prefetch, a Hub dataset)
        assert not any(record[var] for var in OFFLINE_VARS), record


@pytest.mark.slurm
def test_every_result_equals_the_local_runs_byte_for_byte(slurm_run, reduced_run):
    """A second run from scratch, on SLURM's nodes: the adapter, the merged model, the generations, the
    scores and the comparisons are the local run's, bit for bit."""
    import pandas as pd

    on_slurm, local = digests(slurm_run.workdir / "results"), digests(reduced_run.study / "results")
    assert on_slurm.keys() == local.keys()
    assert [name for name in local if on_slurm[name] != local[name]] == []
    assert {"scores.csv", "comparisons.csv", "finetune/tiny_llama/adapter/adapter_model.safetensors",
            "generate/tiny_llama/finetuned/top_k_10/rep0.jsonl"} <= set(local)
    scores = pd.read_csv(slurm_run.workdir / "results" / "scores.csv")
    # BLEU, ROUGE-L, BERTScore and 3 answer-hygiene rates x 2 generations; 3 perplexities x 2 variants
    assert len(scores) == 6 * 2 + 3 * 2
    finetuned = scores[(scores.variant == "finetuned") & (scores.metric == "bleu")]
    assert finetuned.value.min() > 0  # a real run, not an empty one that trivially matches


# ---------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------


def test_slurm_profile_comments_every_entry_and_leaves_account_and_partition_to_the_user():
    lines = (REPO / "profiles" / "slurm" / "config.yaml").read_text().splitlines()
    profile = yaml.safe_load("\n".join(lines))
    assert profile["executor"] == "slurm"
    for key in ("jobs", "latency-wait", "retries", "rerun-incomplete", "slurm-init-seconds-before-status-checks"):
        assert key in profile, key
    for number, line in enumerate(lines):
        if re.match(r"^[a-z-]+:", line):
            assert lines[number - 1].startswith("#"), f"no comment above {line!r}"
    # Active default-resources would hide a user's global profile's (account, partition).
    assert "default-resources" not in profile
    assert "slurm_account" not in json.dumps(profile) and "slurm_partition" not in json.dumps(profile)


def test_no_rule_names_an_account_or_partition():
    for path in list((REPO / "rules").glob("*.smk")) + [REPO / "Snakefile"]:
        text = path.read_text()
        assert "slurm_account" not in text and "slurm_partition" not in text, path

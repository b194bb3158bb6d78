"""The workflow on a real SLURM cluster, through profiles/slurm, and its multi-GPU launch.

The cluster tests (marker `slurm`, root only) start the single-node test
cluster of tests/slurm/ (stopped again at the end, whatever happens) and run a
reduced demo (one tiny model, two decoding configs, 8 test prompts; 7 SLURM
jobs) through

    snakemake --workflow-profile profiles/slurm --profile tests/slurm/profile

with one score job made to fail by an injected fault: the run stops non-zero,
and a rerun without the fault finishes only what was left. Then they check
what sacct recorded, what the jobs saw, and that the scores equal a local
run's (run meanwhile, on the CPU the SLURM runs leave idle while they poll).
Every snakemake call runs under `timeout -s KILL`: a status loop that never
ends would otherwise hang CI.

    python -m pytest tests/test_slurm.py -m slurm     # about 3 minutes on 2 cores

The launch tests (no marker) check on CPU how scripts/finetune.py starts a
multi-GPU training; no GPU is needed for them, and none runs here.
"""

import collections
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tests" / "slurm"
# The rules that stay on the submit host (localrules in the Snakefile); `all` is local by nature.
LOCAL_RULES = {"prefetch", "prepare_data", "build_tiny_model", "check_scores", "aggregate", "compare", "report", "all"}
# The job made to fail: the last of its chain, so the rerun has one SLURM job to do.
FAULTY_JOB = "rule_score_wildcards_tiny_llama_finetuned_top_k_10_0"
FAULT = "score.py:results/score/tiny_llama/finetuned/top_k_10/rep0.json"  # script:output of the job
# Seconds one snakemake call may take before it is killed (a clean run takes ~100 s here).
SNAKEMAKE_TIMEOUT = 300
# The failing run must stop within this many seconds of its start.
FAILURE_BOUND = 240
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


def reduced_demo(hf_home: Path) -> dict:
    """The demo config cut to one model, baseline + top_k_10 and 8 test prompts; GPU rules ask for a GPU."""
    config = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    config["dataset"].update(synthetic_size=240, test_size=8)
    # No base-model generations: the base variant is scored by perplexity only (fewer jobs).
    config["models"] = {"tiny_llama": {"build": {"architecture": "llama"}, "base_decoding": []}}
    config["training"]["epochs"] = 2
    config["decoding"]["sweep"] = {"top_k": [10]}
    config["resources"]["gpu_per_job"] = 1  # sbatch --gpus=1; device: cpu still runs them on the CPU
    config["hf_home"] = str(hf_home)
    return config


def clean_env(**extra) -> dict:
    """This process's environment without Hub offline switches, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARS}
    env.update(extra)
    return env


def start(workdir: Path, *args, env=None, timeout=SNAKEMAKE_TIMEOUT) -> subprocess.Popen:
    """Start `snakemake` on the workflow in REPO in `workdir`, killed after `timeout` s; output to a file."""
    cmd = ["timeout", "-s", "KILL", str(timeout), sys.executable, "-m", "snakemake",
           "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    out = workdir / f"snakemake-{time.monotonic_ns()}.out"
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=out.open("w"), stderr=subprocess.STDOUT,
                            env=env or clean_env())
    proc.out, proc.started = out, time.monotonic()
    return proc


def finish(proc: subprocess.Popen) -> subprocess.Popen:
    """Wait for a started snakemake; its output as .text, its wall time as .elapsed."""
    proc.wait()
    proc.elapsed = time.monotonic() - proc.started
    proc.text = proc.out.read_text()
    return proc


def snakemake(workdir: Path, *args, env=None):
    return finish(start(workdir, *args, env=env))


def check(proc) -> None:
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}) after {proc.elapsed:.0f} s:\n{proc.text[-8000:]}")


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


def sacct_rows(run_ids, timeout=60) -> list:
    """sacct's records of the jobs of these snakemake runs (job name = run id), once all are final."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-S", "now-3hours", "--name", ",".join(run_ids),
             "-o", "JobID,Comment,State,AllocTRES"],
            capture_output=True, text=True, check=True,
        ).stdout
        rows = [dict(zip(("id", "comment", "state", "tres"), line.split("|"))) for line in out.splitlines() if line]
        if rows and all(r["state"] not in ("PENDING", "RUNNING", "COMPLETING") for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"sacct did not settle within {timeout} s:\n{out}")
        time.sleep(1)


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
    started = subprocess.run([str(CLUSTER / "start-cluster.sh")], capture_output=True, text=True, timeout=600)
    run_ids = []
    try:
        assert started.returncode == 0, f"start-cluster.sh failed:\n{started.stdout}\n{started.stderr}"
        yield SimpleNamespace(run_ids=run_ids)
    finally:
        for run_id in run_ids:  # a killed snakemake leaves its jobs behind
            subprocess.run(["scancel", "--name", run_id], capture_output=True)
        subprocess.run([str(CLUSTER / "stop-cluster.sh")], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The reduced demo run locally (warm start), for comparison: started, not waited for."""
    workdir = tmp_path_factory.mktemp("local")
    (workdir / "config.yaml").write_text(yaml.safe_dump(reduced_demo(workdir / "hf-home"), sort_keys=False))
    proc = start(workdir, "--cores", "2", "--workflow-profile", "none")
    yield SimpleNamespace(workdir=workdir, proc=proc)
    if proc.poll() is None:
        proc.kill()


@pytest.fixture(scope="module")
def slurm_run(cluster, local_run, tmp_path_factory):
    """The reduced demo on SLURM: a run with one failing job, then the rerun that finishes it."""
    workdir = tmp_path_factory.mktemp("slurm")
    probe = workdir / "probe"
    (probe / "records").mkdir(parents=True)
    (probe / "sitecustomize.py").write_text(PROBE)
    hf_home = workdir / "hf-home"
    (workdir / "config.yaml").write_text(yaml.safe_dump(reduced_demo(hf_home), sort_keys=False))
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
def test_a_failing_job_stops_the_run_nonzero_in_bounded_time(slurm_run):
    failing = slurm_run.failing
    assert failing.returncode not in (0, 124, 137), failing.text[-4000:]  # failed by itself, not killed
    assert failing.elapsed < FAILURE_BOUND, f"{failing.elapsed:.0f} s"
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
    assert sum(remote.values()) == 7 and set(remote.values()) == {1}
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
    gpu_rules = {"finetune", "generate", "score", "perplexity"}
    rows = [r for r in slurm_run.rows if r["comment"].split("_wildcards_")[0][len("rule_"):] in gpu_rules]
    assert len(rows) == len(slurm_run.rows) == 9  # 7 jobs + the faulty one's 2 attempts
    assert all("gres/gpu=1" in r["tres"] for r in rows), [(r["comment"], r["tres"]) for r in rows]


@pytest.mark.slurm
def test_cluster_jobs_ran_offline_on_the_configured_cache(slurm_run):
    on_nodes = [r for r in slurm_run.records if r["SLURM_JOB_ID"]]
    here = [r for r in slurm_run.records if not r["SLURM_JOB_ID"]]
    assert {r["script"] for r in on_nodes} == {"finetune.py", "generate.py", "score.py", "perplexity.py"}
    assert {r["script"] for r in here} == {"prepare_data.py", "build_tiny_model.py", "check_scores.py", "aggregate.py",
                                           "compare.py", "report.py"}
    for record in on_nodes:
        assert all(record[var] == "1" for var in OFFLINE_VARS), record
    for record in slurm_run.records:
        assert record["HF_HOME"] == str(slurm_run.hf_home), record
    for record in here:  # the submit host keeps the network (prefetch, a Hub dataset)
        assert not any(record[var] for var in OFFLINE_VARS), record


@pytest.mark.slurm
def test_scores_equal_a_local_run(slurm_run, local_run):
    import pandas as pd

    def table(workdir):
        scores = pd.read_csv(workdir / "results" / "scores.csv")
        return scores.sort_values(["model", "variant", "decoding", "metric"]).reset_index(drop=True)

    check(finish(local_run.proc))
    on_slurm, local = table(slurm_run.workdir), table(local_run.workdir)
    # BLEU, ROUGE-L, BERTScore and 3 answer-hygiene rates x 2 generations; 3 perplexities x 2 variants
    assert len(on_slurm) == 6 * 2 + 3 * 2
    pd.testing.assert_frame_equal(on_slurm, local, check_exact=False, rtol=1e-9)
    finetuned = on_slurm[(on_slurm.variant == "finetuned") & (on_slurm.metric == "bleu")]
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


# ---------------------------------------------------------------------------
# Multi-GPU fine-tuning: how scripts/finetune.py launches it
# ---------------------------------------------------------------------------

PARAMS = {
    "lora": {"r": 4}, "training": {"epochs": 1}, "seed": 7, "device": "cuda",
    "load": {"revision": None, "trust_remote_code": False, "quantization": {"load_in_4bit": False}},
}


def fake_job(tmp_path, gpus: int, threads: int = 8):
    """The `snakemake` object rule finetune hands its script."""
    def namespace(**kw):
        ns = SimpleNamespace(**kw)
        ns.get = lambda key, default=None: getattr(ns, key, default)
        return ns

    (tmp_path / "train.jsonl").write_text("{}\n")
    return namespace(
        input=namespace(train=str(tmp_path / "train.jsonl")),
        output=namespace(adapter=str(tmp_path / "m" / "adapter"), loss=str(tmp_path / "m" / "train_log.csv")),
        params=namespace(base_model="org/base", checkpoints=str(tmp_path / "m" / "checkpoints"),
                         processes=max(1, gpus), **PARAMS),
        wildcards=namespace(model="m"), resources=namespace(gpu=gpus), threads=threads,
        log=[str(tmp_path / "finetune.log")],
    )


def run_adapter(tmp_path, monkeypatch, gpus: int, visible: int | None = None):
    """Run scripts/finetune.py's Snakemake adapter; return the in-process training call or the exec'd command.

    The job sees `visible` GPUs (default: as many as it asks for).
    """
    import torch

    import lmsweep.train
    import lmsweep.warm

    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus if visible is None else visible)
    calls = {}

    class Exec(Exception):
        pass

    def fake_execv(path, argv):
        calls["exec"] = argv
        raise Exec

    monkeypatch.setattr(os, "execv", fake_execv)
    monkeypatch.setattr(os, "dup2", lambda *a: None)  # keep pytest's stdout
    monkeypatch.setattr(lmsweep.warm, "delegate", lambda: None)
    monkeypatch.setattr(lmsweep.train, "finetune", lambda *a, **kw: calls.setdefault("train", (a, kw)))
    monkeypatch.setattr("lmsweep.files.log_to", lambda path: None)
    try:
        runpy.run_path(str(REPO / "scripts" / "finetune.py"), init_globals={"snakemake": fake_job(tmp_path, gpus)})
    except Exec:
        pass
    return calls


@pytest.mark.parametrize("gpus", [0, 1])
def test_one_gpu_or_none_trains_in_the_job_process_without_accelerate(tmp_path, monkeypatch, gpus):
    calls = run_adapter(tmp_path, monkeypatch, gpus)
    assert "exec" not in calls
    args, kwargs = calls["train"]
    assert args[2] == str(tmp_path / "m" / "adapter") and kwargs["threads"] == 8
    assert not (tmp_path / "m" / "checkpoints" / "launch_params.json").exists()


def test_several_gpus_exec_accelerate_launch_with_the_jobs_params(tmp_path, monkeypatch):
    command = run_adapter(tmp_path, monkeypatch, gpus=4)["exec"]
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    launcher = command[: command.index(str(REPO / "scripts" / "finetune.py"))]
    assert "--multi_gpu" in launcher and launcher[launcher.index("--num_processes") + 1] == "4"
    assert launcher[launcher.index("--main_process_port") + 1] == "0"  # a free port, never a clash on a node
    args = command[len(launcher) + 1:]
    assert args[args.index("--threads") + 1] == "2"  # 8 CPUs shared by 4 processes
    params_file = Path(args[args.index("--params") + 1])
    assert json.loads(params_file.read_text()) == PARAMS
    assert params_file.parent == tmp_path / "m" / "checkpoints"
    assert "launching 4 training processes" in (tmp_path / "finetune.log").read_text()


def test_more_training_processes_than_visible_gpus_stop_before_anything_loads(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match=r"resources.finetune.gpus is 2, but this job sees 1 GPU\(s\).*"
                                         r"or lower resources.finetune.gpus to 1"):
        run_adapter(tmp_path, monkeypatch, gpus=2, visible=1)


def test_the_launched_command_line_reaches_main_as_the_rule_meant(tmp_path, monkeypatch):
    import lmsweep.train

    command = run_adapter(tmp_path, monkeypatch, gpus=2)["exec"]
    script_args = command[command.index(str(REPO / "scripts" / "finetune.py")) + 1:]
    received = []
    monkeypatch.setattr(lmsweep.train, "finetune", lambda *a, **kw: received.append((a, kw)))
    finetune_script = runpy.run_path(str(REPO / "scripts" / "finetune.py"))
    for rank in ("0", "1"):  # what accelerate launch sets for each process
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", rank)
        finetune_script["main"](script_args)
    (first, first_kw), (second, second_kw) = received
    m = tmp_path / "m"
    assert first[:5] == (str(tmp_path / "train.jsonl"), "org/base", str(m / "adapter"),
                         str(m / "train_log.csv"), str(m / "checkpoints"))
    assert first_kw["lora"] == PARAMS["lora"] and first_kw["seed"] == 7 and first_kw["device"] == "cuda"
    # The second process trains along, on the shared checkpoints, but writes no adapter or loss log of the job.
    assert second[4] == str(m / "checkpoints")
    assert not second[2].startswith(str(tmp_path)) and not second[3].startswith(str(tmp_path))

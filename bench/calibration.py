"""A finetune and a merge job's fixed costs, read from an earlier bench/dag.py GPU run of the reduced study.

bench/study.py --dag-calibration RUN (default DAG_CALIBRATION) and bench/dag.py count them in the estimate;
costs.model_fixed scales them to each model.
"""

import json
import re
from pathlib import Path

import common
from costs import PARAMETERS, STEP_RUN, WARM_FORK_S, cold_start_s, model_inputs, read, training_step_s, validation_s

# bench/train.py's step time is a steady step's (its first two steps left out) and bench/generate.py's merge time is
# a load, merge and write outside the workflow: neither counts all that a job of the workflow spends. A finetune job
# also loads the 4-bit model, sets TRL and PEFT up, runs its first steps' warm-up and writes the adapter; a merge job
# took more than bench/generate.py's merge. Both are read from the baseline adapter's jobs of one bench/dag.py GPU
# run of the reduced study without a sweep (its Snakemake benchmark wall times, read_dag_run):
# - a finetune job's fixed cost: its wall time less its start and its steps at bench/train.py's step time (and its
#   validation evaluations, if it had any): 34.17 - 0.5 - 25 x 0.613 = 18.3 s in DAG_CALIBRATION, of which 12.3 s
#   outside trainer.train() (34.17 s wall around its log's train_runtime of 21.36 s) and 6.0 s the first steps'
#   warm-up inside it (21.36 s against 25 x 0.613 s);
# - a merge job's: its wall time less its start (24.32 - 0.5 = 23.8 s, 1.37x bench/generate.py's 17.4 s).
# Another model's: the finetune's fixed cost scaled by parameters, the merge by its own bench/generate.py merge time
# over the calibration model's. Applied to every finetune job (the old path's too: it loads the same 4-bit model and
# writes an adapter; its fixed cost was measured on the new path's settings alone) and to the new path's merges.
# DAG_CALIBRATION is the 2026-11-29 05:57 H200 run (BENCHMARKS.md, "The reduced study through snakemake"); later
# runs of bench/dag.py (bench/results/h200-2026-12-02-adapt, with a sweep) are not part of it: they check it
# (bench/dag.py --compare). python bench/study.py --no-dag-calibration gives the estimate without it.
DAG_CALIBRATION = Path(__file__).resolve().parent / "results" / "h200-2026-11-29-dag2"


def read_dag_run(path=DAG_CALIBRATION) -> dict:
    """What a bench/dag.py GPU run measured of its baseline adapter's finetune and merge jobs (Snakemake's benchmark
    wall times), with what is needed to take its steps out: its optimizer steps (the adapter's training_info.json),
    its trainer.train() time (train_runtime in the finetune job's log; None if not logged), its job start (the
    study's warm_start), validation and 4-bit settings (its config.yaml). `path`: the run's JSON (bench_dag.json,
    bench_dag_adapt.json) or the folder of a bench_dag.json; the logs, config and info files come from the
    {name}_logs.tar.gz beside it."""
    import tarfile

    import yaml

    path = Path(path)
    if path.is_dir():
        path = path / "bench_dag.json"
    data = json.loads(path.read_text())
    jobs = {r["job"]: r["seconds"] for r in data["rows"] if r.get("step") == "job"}
    model = next(job.split("/")[1] for job in jobs if job.startswith("finetune/") and "@" not in job)
    tarball = path.with_name(path.stem.removeprefix("bench_") + "_logs.tar.gz")
    with tarfile.open(tarball) as tar:
        def text(name):
            return tar.extractfile(name).read().decode(errors="replace")

        config = yaml.safe_load(text("config.yaml"))
        steps = json.loads(text(f"results/finetune/{model}/adapter/training_info.json"))["global_step"]
        runtime = re.findall(r"'train_runtime': '?([\d.]+)", text(f"logs/finetune/{model}.log"))
    training = config["training"]
    source = path.resolve()
    return {"source": str(source.relative_to(common.REPO) if source.is_relative_to(common.REPO) else source),
            "model": model, "warm": bool(config.get("warm_start")),
            "load_in_4bit": config["quantization"]["load_in_4bit"], "steps": steps,
            "validation_size": training.get("validation_size") or 0, "logging_steps": training["logging_steps"],
            "batch": training["batch_size"] * training["gradient_accumulation_steps"],
            "finetune_wall_s": jobs[f"finetune/{model}"],
            "train_runtime_s": float(runtime[-1]) if runtime else None,
            "merge_wall_s": jobs.get(f"merge_adapter/{model}")}


def calibrate(folders, run=DAG_CALIBRATION) -> dict:
    """The fixed costs of a finetune and a merge job of `run` (a read_dag_run() dict, or what it reads), with
    `folders`' step time and job starts: {"model", "finetune_s" (its wall time less its start and its steps),
    "merge_s" (its wall time less its start; None without a merge job), "merge_bench_s" (the model's bench/generate.py
    merge), "outside_training_s" and "first_steps_s" (finetune_s split at train_runtime), "run"}."""
    run = run if isinstance(run, dict) else read_dag_run(run)
    train = read(folders, "bench_train_llama2_7b.json")
    step_s = training_step_s(train, STEP_RUN[run["load_in_4bit"]]) * PARAMETERS[run["model"]] / PARAMETERS["llama2_7b"]
    start = WARM_FORK_S if run["warm"] else cold_start_s(folders)
    steps = run["steps"] * step_s + validation_s(run["steps"], run, step_s)
    runtime = run["train_runtime_s"]
    merge = run["merge_wall_s"] - start if run["merge_wall_s"] is not None else None
    return {"model": run["model"], "finetune_s": max(0.0, run["finetune_wall_s"] - start - steps),
            "merge_s": merge, "merge_bench_s": model_inputs(folders, run["model"], "new")["gen"].get("merge_adapter_s"),
            "outside_training_s": run["finetune_wall_s"] - start - runtime if runtime is not None else None,
            "first_steps_s": runtime - steps if runtime is not None else None,
            "start_s": start, "step_s": step_s, "run": run}


def calibration_note(calibration) -> str:
    run = calibration["run"]
    split = (f": {calibration['outside_training_s']:.1f} s outside trainer.train(), "
             f"{calibration['first_steps_s']:.1f} s its first steps' warm-up" if run["train_runtime_s"] else "")
    return (f"finetune and merge jobs calibrated on {run['source']} ({run['model']}): a finetune job's fixed cost "
            f"{calibration['finetune_s']:.1f} s ({run['finetune_wall_s']} s wall less its start and {run['steps']} "
            f"steps of {calibration['step_s']:.3f} s{split}), "
            + (f"a merge job {calibration['merge_s']:.1f} s ({calibration['merge_s'] / calibration['merge_bench_s']:.2f}x"
               " bench/generate.py's)" if calibration["merge_s"] is not None and calibration["merge_bench_s"]
               else "the merge bench/generate.py's (no merge job to calibrate it)")
            + "; other models: the finetune's by parameters, the merge's by their bench/generate.py merge")

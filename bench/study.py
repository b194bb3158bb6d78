"""What the whole study in config.yaml costs on one GPU, old path against new, from measured per-step costs.

    python bench/study.py --results DIR        # reads DIR/bench_*.json (default: OUT)

The study: 3 models; per model 13 decoding configs (9 sampled; 4 with 2, 4, 6
and 8 beams) and the base model's baseline, 200 test prompts each; one
training of 5,000 examples (313 optimizer steps of 16); a score job per
generation; two perplexity jobs per model; for the new path one merge per
model. Every job pays its start: a cold Python process importing torch,
transformers, peft, trl and bert-score (measured), or a fork of the warm
server (warm_start: true). From the measurements:

- sampled configs: a generate job is a fresh process whose first generate()
  call is all it runs; bench/decode.py measures that call and a second one in
  the same process (variant dynamic, lmsweep's path): the second gives the
  steady rate, the first's extra time a fixed warm-up per job. Without a
  decode measurement, bench/generate.py's first call and its second call
  with transformers' own sampling (lmsweep's per-example streams measured at
  97% of it) stand in;
- beam configs: the num_beams 8 rate (bench/decode.py's first call where
  measured, else bench/generate.py's), scaled by the number of beams;
- a shape not measured is scaled from Llama-2-7B by its parameter count.
--results takes several folders: a file in more than one is read from the last.
Written at 256 and 150 new tokens, one seed replicate (the reference study)
and three (config.yaml's generation.replicates, sampled configs only).
"""

import argparse
import json
from pathlib import Path

import common

PARAMETERS = {"llama2_7b": 6.74e9, "mistral_7b": 7.24e9, "phi2": 2.78e9}
# The reference study, per model: 9 sampled configs + the base model's baseline, 4 beam configs, 200 prompts,
# 313 optimizer steps, two perplexity jobs (base and fine-tuned). bench/dag.py estimates a reduced one.
STUDY = {"sampled": 10, "beams": (2, 4, 6, 8), "prompts": 200, "steps": 313, "perplexity_jobs": 2}
PER_EXAMPLE_STREAMS = 0.97  # lmsweep's sampling rate over transformers' own, measured (BENCHMARKS.md)
# A warm job's start: its wall time less the script's load and work, 0.36-0.51 s for the generate jobs of
# bench/dag.py's GPU run (bench/results/h200-2026-11-29-dag2); the model's load is counted apart.
WARM_FORK_S = 0.5


def read(folders, name: str):
    """bench JSON `name` from the last of `folders` (one folder or several) that has it; None if none does."""
    found = None
    for folder in [folders] if isinstance(folders, (str, Path)) else folders:
        path = Path(folder) / name
        if path.exists():
            found = json.loads(path.read_text())
    return found


def decode_calls(decode: dict | None) -> dict:
    """{call number: row} of bench/decode.py's lmsweep path (variant dynamic; its first process if it ran in
    several), {} without a measurement."""
    calls = {}
    for r in (decode or {}).get("rows", []):
        if r.get("variant") == "dynamic" and isinstance(r.get("call"), int):
            calls.setdefault(r["call"], r)
    return calls


def generation_rates(gen: dict, path: str, decode: dict | None = None, decode_beams: dict | None = None) -> dict:
    rows = {r["config"]: r for r in gen["rows"] if r["path"].startswith(path)}
    first = rows["baseline"]
    beams8 = rows["num_beams_8"]["tokens_per_s"]
    calls, beam_calls = decode_calls(decode), decode_calls(decode_beams)
    if path == "new" and 1 in calls and 2 in calls:  # a fresh process's first call, and its second
        steady = calls[2]["tokens_per_s"]
        warmup = max(0.0, calls[1]["seconds"] - calls[1]["new_tokens"] / steady)
    elif path == "new" and gen.get("library_sampling_tokens_per_s"):
        steady = gen["library_sampling_tokens_per_s"] * PER_EXAMPLE_STREAMS
        warmup = max(0.0, first["seconds"] - first["new_tokens"] / steady)
    else:  # the old path ran 2 batches of 8: its rate is flat from batch to batch
        steady, warmup = first["tokens_per_s"], 0.0
    if path == "new" and 1 in beam_calls:
        beams8 = beam_calls[1]["tokens_per_s"]
    return {"steady": steady, "warmup": warmup, "beams8": beams8, "load": first["load_s"]}


def model_cost(gen, train, score, new_tokens, path, replicates, start_s, scale, reference, study=STUDY,
               decode=None, decode_beams=None) -> dict:
    rates = generation_rates(gen, path, decode, decode_beams)
    prompts, beams = study["prompts"], study["beams"]
    bert = next(r["seconds"] for r in score["rows"] if r["step"].startswith("BERTScore") and "first" in r["step"])
    overlap = next(r["seconds"] for r in score["rows"] if r["step"].startswith("BLEU"))
    sampled_jobs = study["sampled"] * replicates
    generation = sampled_jobs * (rates["warmup"] + prompts * new_tokens / rates["steady"] * scale)
    generation += replicates * sum(prompts * new_tokens / (rates["beams8"] * 8 / b) * scale for b in beams)
    jobs = sampled_jobs + replicates * len(beams)
    # a run that did not record its perplexity time borrows Llama-2-7B's, scaled by parameters
    timed = gen.get("perplexity_s_per_record") or reference["perplexity_s_per_record"]
    per_record = next(v for k, v in timed.items() if k.startswith(path))
    run = {"old": "old", "new": "qlora"}[path]
    step_s = next(r["step_s"] for r in train["rows"] if r["run"] == run)
    return {
        "training_s": study["steps"] * step_s * scale,
        "merge_s": gen.get("merge_adapter_s", 0.0) if path == "new" else 0.0,
        "generation_s": generation,
        "score_s": jobs * (bert + overlap),
        "perplexity_s": study["perplexity_jobs"] * prompts * per_record * scale,
        # generate jobs start and load; score jobs start; perplexity jobs start and load; training (and merge) start
        "job_overhead_s": jobs * (start_s + rates["load"]) + jobs * start_s
        + study["perplexity_jobs"] * (start_s + rates["load"]) + start_s * (1 + (path == "new")),
    }


def estimate(folders, models, new_tokens: int, replicates: int, path: str, start_s: float,
             study=STUDY, notes=None) -> dict:
    """Seconds per part (training, merge, generation, ...) of `study` for `models`, from the benches in `folders`."""
    score, train = read(folders, "bench_score.json"), read(folders, "bench_train_llama2_7b.json")
    reference = read(folders, "bench_generate_llama2_7b.json")
    parts = {}
    for model in models:
        params = PARAMETERS[model]
        gen = read(folders, f"bench_generate_{model}.json")
        measured = gen is not None and any(r["path"].startswith(path) for r in gen["rows"])
        scale = 1.0 if measured else params / PARAMETERS["llama2_7b"]
        # A model's rates come from its own measurements, or all from Llama-2-7B's, scaled (never a mix).
        source = model if measured else "llama2_7b"
        decode = read(folders, f"bench_decode_{source}.json")
        decode_beams = read(folders, f"bench_decode_{source}_beams8.json")
        if not measured:
            gen = reference
            note = f"{model}, {path} path: not measured, scaled from llama2_7b by parameters ({scale:.2f})"
            if notes is not None and note not in notes:
                notes.append(note)
        if path == "new" and notes is not None:
            for what, found in (("sampled configs", decode), ("num_beams 8", decode_beams)):
                note = (f"{model}, {what}: " + (f"{source}'s bench/decode.py (a fresh process's first call)" if found
                                                 else f"{source}'s bench/generate.py (no bench/decode.py measurement)"))
                if note not in notes:
                    notes.append(note)
        train_scale = params / PARAMETERS["llama2_7b"]
        cost = model_cost(gen, train, score, new_tokens, path, replicates, start_s, scale, reference, study,
                          decode, decode_beams)
        cost["training_s"] *= train_scale / scale
        for key, value in cost.items():
            parts[key] = parts.get(key, 0.0) + value
    return parts


def cold_start_s(folders) -> float:
    return next(r["seconds"] for r in read(folders, "bench_score.json")["rows"] if r["step"].startswith("cold start"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, nargs="+", default=None,
                        help="folders of bench_*.json; a file in several is read from the last one (default: OUT)")
    args = parser.parse_args(argv)
    folders = args.results or [common.out_dir()]
    cold = cold_start_s(folders)
    notes, estimates = [], []
    for new_tokens in (256, 150):
        for replicates in (1, 3):
            for path, start in (("old", cold), ("new", cold), ("new", WARM_FORK_S)):
                parts = estimate(folders, PARAMETERS, new_tokens, replicates, path, start, notes=notes)
                total = sum(parts.values())
                estimates.append({"new_tokens": new_tokens, "replicates": replicates, "path": path,
                                  "job_start": "cold" if start == cold else "warm", "gpu_hours": total / 3600,
                                  **{k: v / 60 for k, v in parts.items()},
                                  "overhead_share": parts["job_overhead_s"] / total})
    common.out_dir().mkdir(parents=True, exist_ok=True)
    (common.out_dir() / "bench_study.json").write_text(json.dumps({"estimates": estimates, "notes": notes}, indent=2))
    columns = ["new_tokens", "replicates", "path", "job_start", "gpu_hours", "training_s", "merge_s", "generation_s",
               "score_s", "perplexity_s", "job_overhead_s", "overhead_share"]
    print("GPU-hours in total; the parts in minutes")
    print(" | ".join(c[:-2] + " min" if c.endswith("_s") else c for c in columns))
    print(" | ".join("---" for _ in columns))
    for row in estimates:
        print(" | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()

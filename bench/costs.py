"""A study's cost on one GPU from the per-step costs the other benches measured: per model, per part and per rule.

The model of the estimate bench/study.py prints (its docstring says what each part counts), for the reference
study (STUDY) or a reduced one (bench/dag.py's); bench/sweep_estimate.py adds an adaptation sweep's adapters and
bench/calibration.py a finetune and a merge job's fixed costs.
"""

import json
from pathlib import Path

PARAMETERS = {"llama2_7b": 6.74e9, "mistral_7b": 7.24e9, "phi2": 2.78e9}
# The reference study, per model: 9 sampled configs + the base model's baseline, 4 beam configs, 200 prompts,
# 313 optimizer steps, two perplexity jobs (base and fine-tuned). bench/dag.py estimates a reduced one.
STUDY = {"sampled": 10, "beams": (2, 4, 6, 8), "prompts": 200, "steps": 313, "perplexity_jobs": 2}
PER_EXAMPLE_STREAMS = 0.97  # lmsweep's sampling rate over transformers' own, measured (BENCHMARKS.md)
# A warm job's start: its wall time less the script's load and work, 0.36-0.51 s for the generate jobs of
# bench/dag.py's GPU run (bench/results/h200-2026-11-29-dag2); the model's load is counted apart.
WARM_FORK_S = 0.5
# The reference study's training records, and examples per optimizer step (313 steps = ceil(5000 / 16)).
TRAIN_RECORDS, BATCH, LOGGING_STEPS = 5000, 16, 10
# A validation evaluation (training.validation_size > 0) runs the forward pass alone over the held-out records,
# in batches of training.batch_size: taken as a third of a training step per batch (the backward pass is about
# twice the forward's work; no optimizer step). Not measured.
EVAL_SHARE_OF_STEP = 1 / 3
# load_in_4bit -> the bench/train.py run whose step time a training takes (bench/sweep_estimate.py: a bf16 adapter's)
STEP_RUN = {True: "qlora", False: "bf16"}


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


def unit_costs(gen, train, score, path, reference, decode=None, decode_beams=None) -> dict:
    """One model's per-step costs: generation rates, a score job's BERTScore and BLEU/ROUGE seconds, perplexity
    seconds per record, a QLoRA training step (the old path: the old settings' step)."""
    timed = gen.get("perplexity_s_per_record") or reference["perplexity_s_per_record"]
    return {
        "rates": generation_rates(gen, path, decode, decode_beams),
        "bert": next(r["seconds"] for r in score["rows"]
                     if r["step"].startswith("BERTScore") and "first" in r["step"]),
        "overlap": next(r["seconds"] for r in score["rows"] if r["step"].startswith("BLEU")),
        # a run that did not record its perplexity time borrows Llama-2-7B's, scaled by parameters
        "per_record": next(v for k, v in timed.items() if k.startswith(path)),
        "step_s": training_step_s(train, {"old": "old", "new": "qlora"}[path]),
    }


def training_step_s(train, run: str) -> float:
    """Seconds per optimizer step of one bench/train.py run (old, bf16, bf16_padded, qlora)."""
    return next(r["step_s"] for r in train["rows"] if r["run"] == run)


def model_cost(gen, train, score, new_tokens, path, replicates, start_s, scale, reference, study=STUDY,
               decode=None, decode_beams=None, fixed=None) -> dict:
    """One model's seconds per part, and per rule under "by_rule" ({rule: {"work", "overhead"}}). `fixed`:
    model_fixed()'s {"finetune_s", "merge_s"} (None: neither, the estimate before calibration.DAG_CALIBRATION)."""
    units = unit_costs(gen, train, score, path, reference, decode, decode_beams)
    rates, bert, overlap, per_record = units["rates"], units["bert"], units["overlap"], units["per_record"]
    prompts, beams = study["prompts"], study["beams"]
    sampled_jobs = study["sampled"] * replicates
    generation = sampled_jobs * (rates["warmup"] + prompts * new_tokens / rates["steady"] * scale)
    generation += replicates * sum(prompts * new_tokens / (rates["beams8"] * 8 / b) * scale for b in beams)
    jobs = sampled_jobs + replicates * len(beams)
    training = study["steps"] * units["step_s"] * scale
    if study.get("validation_size"):
        training += validation_s(study["steps"], study, units["step_s"] * scale)
    merge = gen.get("merge_adapter_s", 0.0) if path == "new" else 0.0
    if fixed is not None and path == "new":
        merge = fixed["merge_s"]
    # generate jobs start and load; score jobs start; perplexity jobs start and load; training (and merge) start
    overhead = (jobs * (start_s + rates["load"]) + jobs * start_s
                + study["perplexity_jobs"] * (start_s + rates["load"]) + start_s * (1 + (path == "new")))
    finetune_fixed = fixed["finetune_s"] if fixed is not None else 0.0
    if fixed is not None:  # a finetune job's model load, setup, first steps' warm-up and adapter save
        overhead += finetune_fixed
    return {
        "training_s": training,
        "merge_s": merge,
        "generation_s": generation,
        "score_s": jobs * (bert + overlap),
        "perplexity_s": study["perplexity_jobs"] * prompts * per_record * scale,
        "job_overhead_s": overhead,
        "by_rule": {
            "finetune": {"work": training, "overhead": start_s + finetune_fixed},
            "merge_adapter": {"work": merge, "overhead": start_s if path == "new" else 0.0},
            "generate": {"work": generation, "overhead": jobs * (start_s + rates["load"])},
            "score": {"work": jobs * (bert + overlap), "overhead": jobs * start_s},
            "perplexity": {"work": study["perplexity_jobs"] * prompts * per_record * scale,
                           "overhead": study["perplexity_jobs"] * (start_s + rates["load"])},
        },
    }


def model_inputs(folders, model: str, path: str, notes=None) -> dict:
    """Where one model's costs come from: its own generate (and decode) benches, or all of Llama-2-7B's scaled by
    parameters (never a mix); `scale` for generation and perplexity, `train_scale` for training (measured on
    Llama-2-7B alone)."""
    reference = read(folders, "bench_generate_llama2_7b.json")
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
    return {"gen": gen, "reference": reference, "decode": decode, "decode_beams": decode_beams, "scale": scale,
            "train_scale": params / PARAMETERS["llama2_7b"]}


def estimate(folders, models, new_tokens: int, replicates: int, path: str, start_s: float,
             study=STUDY, notes=None, calibration=None, by_rule=None) -> dict:
    """Seconds per part (training, merge, generation, ...) of `study` for `models`, from the benches in `folders`.
    `calibration`: calibration.calibrate()'s fixed costs of a finetune and a merge job (None: not counted).
    `by_rule`: a dict to fill with seconds per rule (starts and loads included)."""
    score, train = read(folders, "bench_score.json"), read(folders, "bench_train_llama2_7b.json")
    parts = {}
    for model in models:
        m = model_inputs(folders, model, path, notes)
        scale = m["scale"]
        cost = model_cost(m["gen"], train, score, new_tokens, path, replicates, start_s, scale, m["reference"], study,
                          m["decode"], m["decode_beams"], model_fixed(calibration, model, m["gen"]))
        rules = cost.pop("by_rule")
        cost["training_s"] *= m["train_scale"] / scale
        rules["finetune"]["work"] = cost["training_s"]
        for key, value in cost.items():
            parts[key] = parts.get(key, 0.0) + value
        if by_rule is not None:
            for rule, c in rules.items():
                by_rule[rule] = by_rule.get(rule, 0.0) + c["work"] + c["overhead"]
    return parts


def model_fixed(calibration, model: str, gen: dict) -> dict | None:
    """{"finetune_s", "merge_s"}: a finetune job's fixed cost and a merge job's work for `model` (gen: the
    bench/generate.py results its estimate reads), from calibration.calibrate()'s; None without a calibration."""
    if calibration is None:
        return None
    merge = gen.get("merge_adapter_s", 0.0)
    if calibration["merge_s"] is not None and calibration["merge_bench_s"]:
        merge *= calibration["merge_s"] / calibration["merge_bench_s"]
    return {"finetune_s": calibration["finetune_s"] * PARAMETERS[model] / PARAMETERS[calibration["model"]],
            "merge_s": merge}


def validation_s(steps: int, study: dict, step_s: float) -> float:
    """Seconds of the validation evaluations of one training of `steps` steps: one every logging_steps steps and
    one at the end unless the last logged step was it, each over ceil(validation_size / batch) batches."""
    size = study.get("validation_size", 0)
    if not size:
        return 0.0
    logging = study.get("logging_steps", LOGGING_STEPS)
    evaluations = steps // logging + (1 if steps % logging else 0)
    return evaluations * -(-size // study.get("batch", BATCH)) * EVAL_SHARE_OF_STEP * step_s


def reference_jobs(study=STUDY, replicates: int = 1, merged: bool = True, models: int = 1) -> dict:
    """Jobs per rule of the study without its sweep (what model_cost counts), for `models` models."""
    runs = (study["sampled"] + len(study["beams"])) * replicates
    return {"finetune": models, "merge_adapter": models * int(merged), "generate": models * runs,
            "score": models * runs, "perplexity": models * study["perplexity_jobs"]}


def cold_start_s(folders) -> float:
    return next(r["seconds"] for r in read(folders, "bench_score.json")["rows"] if r["step"].startswith("cold start"))

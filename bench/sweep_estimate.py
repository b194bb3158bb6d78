"""What an adaptation sweep (config.yaml's `adaptation`, issue 21) adds to a study's cost: its adapters' jobs and
seconds, per rule and per adapter, for the new path (bench/study.py --adaptation-sweep, bench/dag.py --adaptations).
"""

import math
import re

import common  # noqa: F401 - scripts/ (lmsweep) on the path, as for bench/study.py
from costs import STEP_RUN, STUDY, model_fixed, model_inputs, read, training_step_s, unit_costs, validation_s

# The reference study's baseline adapter, as far as a sweep moves it (config.yaml's lora, training and
# quantization): a swept value equal to one of these would train the baseline again, and is refused.
BASELINE_ADAPTER = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all", "learning_rate": 2.0e-4,
                    "epochs": 1, "max_steps": -1, "load_in_4bit": True}
# What a swept setting does to a training's cost (the model of this estimate, not a measurement):
# - r, alpha, dropout, learning_rate: nothing measurable. A rank-r LoRA adds r (d_in + d_out) multiply-adds per
#   token to a projection's d_in x d_out: for Llama-2-7B's 4096 x 4096 projections 0.8% at r 16, 1.6% at r 32,
#   0.2% at r 4; the step time is taken as the baseline adapter's (bench/train.py measured r 16 alone; QLoRA's
#   step is bound by the 4-bit dequantization and the base model's matmuls, not by the adapter's);
# - target_modules attention: fewer adapted modules, a step no slower than the baseline's: taken as the
#   baseline's (an upper bound; not measured);
# - epochs, max_steps: the optimizer steps, linearly (ceil(epochs x steps per epoch), as the Trainer counts);
# - load_in_4bit false (bf16 LoRA against the QLoRA baseline): bench/train.py's bf16 run, padding-free batches of
#   16 without checkpointing as the qlora run the baseline's step comes from, but fused AdamW where the study
#   keeps its optimizer (paged 8-bit AdamW; on LoRA's few parameters the optimizer step is a small part); the
#   merge of a bf16 adapter (no dequantization) is taken as the 4-bit one's;
# - every swept adapter's generate, score and perplexity jobs cost what the baseline adapter's do under the same
#   decoding config: the merged model has the base model's shape whatever the adapter (inference.weights:
#   merged; the sweep is estimated for the new path only, the old one predates it);
# - as for the baseline adapter, a finetune job costs its start, its steps and the fixed cost of DAG_CALIBRATION
#   (bench/calibration.py: its model load, setup, first steps' warm-up and adapter save), a merge job its start and
#   DAG_CALIBRATION's merge; a bf16 adapter's fixed costs are taken as the 4-bit one's.


def parse_sweep(specs) -> dict:
    """{setting: [values]} from `r=4,32 learning_rate=1e-4 load_in_4bit=false` (as adaptation.sweep)."""
    from lmsweep.adaptation import PARAMETERS as SETTINGS

    def value(text: str):
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    sweep = {}
    for spec in specs:
        setting, _, values = spec.partition("=")
        if setting not in SETTINGS or not values:
            raise ValueError(f"{spec!r}: write SETTING=V1,V2 with a setting of {', '.join(SETTINGS)}")
        sweep.setdefault(setting, []).extend(value(v) for v in values.split(",") if v)
    return sweep


def baseline_adapter(config: dict, model: str | None = None) -> dict:
    """BASELINE_ADAPTER's settings of a study's config (a model's own lora and training overrides applied)."""
    entry = config["models"].get(model, {}) if model else {}
    lora = {**config["lora"], **entry.get("lora", {})}
    training = {**config["training"], **entry.get("training", {})}
    return {"r": lora["r"], "alpha": lora["alpha"], "dropout": lora["dropout"],
            "target_modules": lora.get("target_modules") or "all", "learning_rate": training["learning_rate"],
            "epochs": training["epochs"], "max_steps": training["max_steps"],
            "load_in_4bit": config["quantization"]["load_in_4bit"]}


def sweep_names(config: dict) -> dict:
    """{adaptation name: (setting, value)} of a study config's adaptation sweep ({} without one)."""
    from lmsweep.adaptation import expand

    return expand(((config.get("adaptation") or {}).get("sweep")) or {})


def adapter_steps(setting: str, value, steps: int, baseline=BASELINE_ADAPTER) -> int:
    """Optimizer steps of the adapter that moves `setting` to `value`; the baseline adapter trains `steps`."""
    if setting not in ("epochs", "max_steps"):
        return steps
    if baseline["max_steps"] > 0:
        raise ValueError(f"the baseline's max_steps ({baseline['max_steps']}) caps its steps: its steps per epoch "
                         "are unknown here")
    per_epoch = steps / baseline["epochs"]
    if setting == "max_steps" and value > 0:
        return value
    return math.ceil((value if setting == "epochs" else baseline["epochs"]) * per_epoch)


def decoding_jobs(names, replicates: int, settings=None) -> list:
    """[(config, num_beams, jobs)] of the decoding configs a swept adapter generates under. `settings`: {config:
    generate() settings} (lmsweep.decoding.expand of the study's decoding section); without it, configs are
    read as the reference study's: every one sampled, num_beams_N with N beams, any other with one."""
    out = []
    for name in names:
        if settings is not None:
            if name not in settings:
                raise ValueError(f"decoding config {name!r} is not the study's; known: {', '.join(settings)}")
            beams, sampled = settings[name].get("num_beams", 1), settings[name].get("do_sample", False)
        else:
            found = re.fullmatch(r"num_beams_(\d+)", name)
            beams, sampled = (int(found.group(1)) if found else 1), True
        out.append((name, beams, replicates if sampled else 1))
    return out


def sweep_plan(sweep: dict, decoding, replicates: int, study=STUDY, baseline=BASELINE_ADAPTER, settings=None,
               merged: bool = True) -> dict:
    """{adaptation name: what one model's adapter of it runs}: its setting and value, optimizer steps, the
    bench/train.py run its step time comes from, its generate jobs [(config, beams, jobs)] and its jobs per rule."""
    from lmsweep.adaptation import expand

    generate = decoding_jobs(decoding, replicates, settings)
    runs = sum(jobs for _, _, jobs in generate)
    plan = {}
    for name, (setting, value) in expand(sweep).items():
        if value == baseline.get(setting):
            raise ValueError(f"{setting}={value!r} is the baseline adapter's value: {name} would train it again")
        four_bit = value if setting == "load_in_4bit" else baseline["load_in_4bit"]
        plan[name] = {"setting": setting, "value": value, "steps": adapter_steps(setting, value, study["steps"],
                                                                                 baseline),
                      "training_run": STEP_RUN[four_bit], "generate": generate,
                      "jobs": {"finetune": 1, "merge_adapter": int(merged), "generate": runs, "score": runs,
                               "perplexity": 1}}
    return plan


def adapter_cost(entry: dict, units: dict, step_s: float, merge_s: float, new_tokens: int, start_s: float,
                 scale: float, train_scale: float, study=STUDY, finetune_s: float = 0.0) -> dict:
    """Seconds per rule of one swept adapter of one model (a job's start, and its model's load, included).
    `finetune_s`: a finetune job's fixed cost (model_fixed's)."""
    rates, prompts = units["rates"], study["prompts"]
    generation = 0.0
    for _, beams, jobs in entry["generate"]:
        if beams == 1:  # a fresh process's first call: its warm-up, then the steady rate
            generation += jobs * (rates["warmup"] + prompts * new_tokens / rates["steady"] * scale)
        else:  # beams: the num_beams 8 rate scaled by the number of beams, as for the reference study
            generation += jobs * prompts * new_tokens / (rates["beams8"] * 8 / beams) * scale
    runs = entry["jobs"]["generate"]
    training = entry["steps"] * step_s * train_scale + validation_s(entry["steps"], study, step_s * train_scale)
    return {
        "finetune": {"work": training, "overhead": start_s + finetune_s},
        "merge_adapter": {"work": merge_s * entry["jobs"]["merge_adapter"],
                          "overhead": start_s * entry["jobs"]["merge_adapter"]},
        "generate": {"work": generation, "overhead": runs * (start_s + rates["load"])},
        "score": {"work": runs * (units["bert"] + units["overlap"]), "overhead": runs * start_s},
        "perplexity": {"work": prompts * units["per_record"] * scale, "overhead": start_s + rates["load"]},
    }


PART = {"finetune": "training_s", "merge_adapter": "merge_s", "generate": "generation_s", "score": "score_s",
        "perplexity": "perplexity_s"}


def sweep_estimate(folders, models, sweep: dict, decoding, new_tokens: int, replicates: int, start_s: float,
                   study=STUDY, baseline=BASELINE_ADAPTER, settings=None, swept=None, merged: bool = True,
                   notes=None, calibration=None) -> dict:
    """What an adaptation sweep adds to `study` (new path): {"parts": seconds per part as estimate() gives them,
    "by_rule": seconds per rule (starts and loads included), "jobs": jobs per rule, "adapters": one row per
    (model, adaptation)}. `swept`: the models swept (adaptation.models; None: all). `calibration`:
    calibration.calibrate()'s fixed costs of a finetune and a merge job (None: not counted)."""
    score, train = read(folders, "bench_score.json"), read(folders, "bench_train_llama2_7b.json")
    plan = sweep_plan(sweep, decoding, replicates, study, baseline, settings, merged)
    out = {"parts": {k: 0.0 for k in (*PART.values(), "job_overhead_s")}, "by_rule": {r: 0.0 for r in PART},
           "jobs": {r: 0 for r in PART}, "adapters": []}
    for model in models:
        if swept is not None and model not in swept:
            continue
        m = model_inputs(folders, model, "new", notes)
        units = unit_costs(m["gen"], train, score, "new", m["reference"], m["decode"], m["decode_beams"])
        fixed = model_fixed(calibration, model, m["gen"]) or {"finetune_s": 0.0,
                                                              "merge_s": m["gen"].get("merge_adapter_s", 0.0)}
        for name, entry in plan.items():
            step_s = training_step_s(train, entry["training_run"])
            cost = adapter_cost(entry, units, step_s, fixed["merge_s"], new_tokens, start_s,
                                m["scale"], m["train_scale"], study, fixed["finetune_s"])
            for rule, c in cost.items():
                out["parts"][PART[rule]] += c["work"]
                out["parts"]["job_overhead_s"] += c["overhead"]
                out["by_rule"][rule] += c["work"] + c["overhead"]
                out["jobs"][rule] += entry["jobs"][rule]
            out["adapters"].append({"model": model, "adaptation": name, "setting": entry["setting"],
                                    "value": entry["value"], "steps": entry["steps"],
                                    "step_s": step_s * m["train_scale"], "jobs": sum(entry["jobs"].values()),
                                    "by_rule": {rule: c["work"] + c["overhead"] for rule, c in cost.items()},
                                    "seconds": sum(c["work"] + c["overhead"] for c in cost.values())})
    if notes is not None and any(e["training_run"] == "bf16" for e in plan.values()):
        note = ("load_in_4bit false: bench/train.py's bf16 step (padding-free, fused AdamW), the merge as the "
                "4-bit adapter's")
        if note not in notes:
            notes.append(note)
    return out

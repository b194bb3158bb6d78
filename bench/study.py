"""What the whole study in config.yaml costs on one GPU, old path against new, from measured per-step costs.

    python bench/study.py --results DIR        # reads DIR/bench_*.json (default: OUT)
    python bench/study.py --results DIR --adaptation-sweep r=4,32 learning_rate=1e-4   # with an adaptation sweep

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
- a shape not measured is scaled from Llama-2-7B by its parameter count;
- a finetune job's fixed cost (its model load, setup, first steps' warm-up and
  adapter save) and a merge job's wall time: from the baseline adapter's jobs
  of a bench/dag.py GPU run of the reduced study (--dag-calibration, default
  bench/results/h200-2026-11-29-dag2; see DAG_CALIBRATION). Without it
  (--no-dag-calibration) a finetune job is its start and steps and a merge
  bench/generate.py's merge, as the estimate was before (BENCHMARKS.md).
--results takes several folders: a file in more than one is read from the last.
Written at 256 and 150 new tokens, one seed replicate (the reference study)
and three (config.yaml's generation.replicates, sampled configs only).

--adaptation-sweep (config.yaml's adaptation.sweep, issue 21) adds, per
swept model and value, one adapter: a finetune job (the baseline's steps
and step time, but for the settings that move them: see the comments at
BASELINE_ADAPTER), a merge, a generate and a score job per replicate of each
--adaptation-decoding config, and a perplexity job. What the sweep adds is
written apart from the reference study (bench_study.json's "adaptation"),
in total, per part and per adapter, for the new path; without a sweep the
output is the reference study's alone, as before.
"""

import argparse
import json
from pathlib import Path

import common
from calibration import DAG_CALIBRATION, calibrate, calibration_note
from costs import BATCH, LOGGING_STEPS, PARAMETERS, STUDY, TRAIN_RECORDS, WARM_FORK_S, cold_start_s, estimate
from sweep_estimate import parse_sweep, sweep_estimate, sweep_plan


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, nargs="+", default=None,
                        help="folders of bench_*.json; a file in several is read from the last one (default: OUT)")
    parser.add_argument("--adaptation-sweep", nargs="+", default=None, metavar="SETTING=V1,V2",
                        help="an adaptation sweep (config.yaml's adaptation.sweep), e.g. r=4,32 learning_rate=1e-4 "
                             "epochs=2: its added cost is estimated beside the reference study's")
    parser.add_argument("--adaptation-decoding", nargs="+", default=["baseline"], metavar="CONFIG",
                        help="adaptation.decoding: the decoding configs each swept adapter runs (default: baseline)")
    parser.add_argument("--adaptation-models", nargs="+", default=None, choices=sorted(PARAMETERS),
                        help="adaptation.models: the models swept (default: all three)")
    parser.add_argument("--dag-calibration", type=Path, default=DAG_CALIBRATION, metavar="RUN",
                        help="a bench/dag.py GPU run (its bench_dag.json, or its folder) whose finetune and merge jobs "
                             "give their fixed costs (default: %(default)s)")
    parser.add_argument("--no-dag-calibration", action="store_true",
                        help="no fixed costs of a finetune and a merge job: the estimate as before the calibration "
                             "(a finetune job its start and steps, a merge job bench/generate.py's merge)")
    parser.add_argument("--validation-size", type=int, default=0,
                        help="training.validation_size: records held out of the 5,000 (fewer steps) and evaluated "
                             "every 10 steps, for every adapter, the reference study's included (default: 0)")
    args = parser.parse_args(argv)
    folders = args.results or [common.out_dir()]
    study = STUDY
    if args.validation_size:
        study = dict(STUDY, steps=-(-(TRAIN_RECORDS - args.validation_size) // BATCH),
                     validation_size=args.validation_size, logging_steps=LOGGING_STEPS, batch=BATCH)
    sweep = None
    if args.adaptation_sweep:
        try:
            sweep = parse_sweep(args.adaptation_sweep)
            sweep_plan(sweep, args.adaptation_decoding, 1, study, settings=reference_decoding())
        except ValueError as err:
            parser.error(str(err))
    cold = cold_start_s(folders)
    notes, estimates, swept = [], [], []
    calibration = None if args.no_dag_calibration else calibrate(folders, args.dag_calibration)
    if calibration:
        notes.append(calibration_note(calibration))
    for new_tokens in (256, 150):
        for replicates in (1, 3):
            for path, start in (("old", cold), ("new", cold), ("new", WARM_FORK_S)):
                parts = estimate(folders, PARAMETERS, new_tokens, replicates, path, start, study, notes=notes,
                                 calibration=calibration)
                total = sum(parts.values())
                estimates.append({"new_tokens": new_tokens, "replicates": replicates, "path": path,
                                  "job_start": "cold" if start == cold else "warm", "gpu_hours": total / 3600,
                                  **{k: v / 60 for k, v in parts.items()},
                                  "overhead_share": parts["job_overhead_s"] / total})
                if sweep and path == "new":
                    added = sweep_estimate(folders, PARAMETERS, sweep, args.adaptation_decoding, new_tokens,
                                           replicates, start, study, settings=reference_decoding(),
                                           swept=args.adaptation_models, notes=notes, calibration=calibration)
                    seconds = sum(added["parts"].values())
                    adapters = len(added["adapters"])
                    swept.append({"new_tokens": new_tokens, "replicates": replicates, "path": path,
                                  "job_start": estimates[-1]["job_start"], "adapters": adapters,
                                  "jobs": sum(added["jobs"].values()), "jobs_per_rule": added["jobs"],
                                  "gpu_hours": seconds / 3600, **{k: v / 60 for k, v in added["parts"].items()},
                                  "per_adapter_min": seconds / 60 / adapters,
                                  "reference_gpu_hours": total / 3600, "with_sweep_gpu_hours": (total + seconds) / 3600,
                                  "by_rule_min": {k: v / 60 for k, v in added["by_rule"].items()},
                                  "adapters_min": [{**{k: v for k, v in a.items() if k not in ("by_rule", "seconds")},
                                                    "minutes": a["seconds"] / 60} for a in added["adapters"]]})
    written = {"estimates": estimates, "notes": notes}
    if calibration:
        written["calibration"] = calibration
    if args.validation_size:
        written["validation_size"] = args.validation_size
    if sweep:
        written["adaptation"] = {"sweep": sweep, "decoding": args.adaptation_decoding,
                                 "models": args.adaptation_models, "estimates": swept}
    common.out_dir().mkdir(parents=True, exist_ok=True)
    (common.out_dir() / "bench_study.json").write_text(json.dumps(written, indent=2))
    columns = ["new_tokens", "replicates", "path", "job_start", "gpu_hours", "training_s", "merge_s", "generation_s",
               "score_s", "perplexity_s", "job_overhead_s", "overhead_share"]
    if sweep:
        print("The reference study")
    print("GPU-hours in total; the parts in minutes")
    table(columns, estimates)
    if sweep:
        names = ", ".join(f"{k}={','.join(str(v) for v in vs)}" for k, vs in sweep.items())
        print(f"\nWhat the adaptation sweep {names} adds (new path; each adapter generates under "
              f"{', '.join(args.adaptation_decoding)}; models: {', '.join(args.adaptation_models or PARAMETERS)}): "
              "GPU-hours in total, the parts and one adapter's mean in minutes, beside the reference study's GPU-hours")
        table(["new_tokens", "replicates", "job_start", "adapters", "jobs", "gpu_hours", "training_s", "merge_s",
               "generation_s", "score_s", "perplexity_s", "job_overhead_s", "per_adapter_min", "reference_gpu_hours",
               "with_sweep_gpu_hours"], swept)
        for row in swept:
            if (row["new_tokens"], row["replicates"], row["job_start"]) == (256, 3, "warm"):
                print("\nPer adapter, at 256 new tokens, 3 replicates, warm starts: minutes")
                table(["model", "adaptation", "steps", "step_s", "jobs", "minutes"], row["adapters_min"])
    for note in notes:
        print(note)


def table(columns, rows) -> None:
    print(" | ".join(c[:-2] + " min" if c.endswith("_s") and c != "step_s" else c for c in columns))
    print(" | ".join("---" for _ in columns))
    for row in rows:
        print(" | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns))


def reference_decoding() -> dict:
    """{config: generate() settings} of the reference study's decoding section (config.yaml)."""
    import yaml

    from lmsweep.decoding import expand

    return expand(yaml.safe_load((common.REPO / "config.yaml").read_text())["decoding"])


if __name__ == "__main__":
    main()

"""Generation throughput and inference precision: the old path against the new, in one run.

    python bench/generate.py --shape llama2_7b --prompts 200 --new-tokens 128     # on the GPU machine
    python bench/generate.py --shape tiny --prompts 12 --new-tokens 8 --cpu       # checks the code on a CPU

Both paths run lmsweep's own loaders and generate() on the same prompts with the same seed:

- old: what lmsweep ran before: the 4-bit base with the LoRA adapter beside it
  (inference.weights: as_trained), 8 prompts per generate() call, transformers'
  own sampling seeded per batch, cuDNN's attention allowed (common.cudnn_attention);
- new: the adapter merged into the dequantized 4-bit base, plain bf16
  (inference.weights: merged), the batch found for the GPU's free memory
  (generation.batch_size: auto), per-example random streams (lmsweep.sampling);
  its baseline config runs once more with transformers' own sampling, to show
  what the per-example streams cost.

Each at the study's baseline (sampling, top_k 50, temperature 0.8) and at
num_beams 8 (beam sampling). The old path runs two of its batches (its speed
does not change from batch to batch); the new one every prompt. Then the
perplexity of the reference answers under both paths, to state how far the
merged weights move it. Prints a table and writes OUT/bench_generate_<shape>.json.
"""

import argparse
import dataclasses
import gc
import sys
import time
from pathlib import Path

import common

SAMPLING = {"do_sample": True, "top_k": 50, "num_beams": 1, "temperature": 0.8}


def run_path(results, label, base, adapter, load, merge, prompts, settings_list, batch, old_prompts, device,
             perplexity_records, library_sampling=False, old_sampling=False):
    import torch

    from lmsweep.answer_nll import answer_nll, perplexity
    from lmsweep.generation import generate
    from lmsweep.models import load_for_step
    from lmsweep.prompts import Prompter

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    load = dataclasses.replace(load, weights="merged" if merge else "as_trained")
    model, tokenizer, _ = load_for_step(str(base), str(adapter), load, device, threads=8, seed=0,
                                        padding_side="left", merge=merge)
    load_s = time.perf_counter() - started
    if merge:
        # As the workflow runs it: rule merge_adapter writes the merged model once, each job loads it.
        folder = Path(str(base) + "-merged")
        started = time.perf_counter()
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        results.data["merge_adapter_s"] = round(load_s + time.perf_counter() - started, 1)
        del model
        gc.collect()
        started = time.perf_counter()
        plain = dataclasses.replace(load, quantization=dataclasses.replace(load.quantization, load_in_4bit=False),
                                    merged_folder=True, merged_from_4bit=load.quantization.load_in_4bit)
        model, tokenizer, _ = load_for_step(str(folder), None, plain, device, threads=8, seed=0, padding_side="left")
        load_s = time.perf_counter() - started
    from lmsweep import sampling

    possible = sampling.per_example_possible
    if old_sampling:  # lmsweep before: transformers' own sampling, seeded per batch
        sampling.per_example_possible = lambda config: False
    for name, settings in settings_list:
        records = prompts[:old_prompts] if batch != "auto" else prompts
        generate(model, Prompter("alpaca", tokenizer), records[:2], {**settings, "max_new_tokens": 4}, 2, seed=1)  # warm-up
        with common.BusyMeter() as meter:
            out = generate(model, Prompter("alpaca", tokenizer), records, settings, batch, seed=1)
        tokens = sum(r["new_tokens"] for r in out)
        if library_sampling and name == "baseline":
            # What the per-example random streams cost: the same batch with transformers' own sampling.
            sampling.per_example_possible = lambda config: False
            try:
                with common.BusyMeter() as plain:
                    generate(model, Prompter("alpaca", tokenizer), records, settings, batch, seed=1)
            finally:
                sampling.per_example_possible = possible
            results.data["library_sampling_tokens_per_s"] = tokens / plain.seconds
            results.data["library_sampling_gpu_busy"] = plain.busy
        batches = len({(r["batch_size"]) for r in out})
        results.add(path=label, config=name, prompts=len(records), batch=max(r["batch_size"] for r in out),
                    new_tokens=tokens, seconds=round(meter.seconds, 2), tokens_per_s=tokens / meter.seconds,
                    ms_per_step=1000 * meter.seconds / (settings["max_new_tokens"]
                                                         * -(-len(records) // max(r["batch_size"] for r in out))),
                    gpu_busy=meter.busy, load_s=round(load_s, 1),
                    peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None,
                    batch_sizes=batches)
    sampling.per_example_possible = possible
    started = time.perf_counter()
    nll = answer_nll(model, Prompter("alpaca", tokenizer), perplexity_records, batch_size=16)
    results.data.setdefault("perplexity_s_per_record", {})[label] = (time.perf_counter() - started) / len(nll)
    value = perplexity([r.nll for r in nll], [r.tokens for r in nll])
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return value, nll


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="llama2_7b", choices=sorted(common.SHAPES))
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--old-batch", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lmsweep-bench"), help="model folders")
    parser.add_argument("--cpu", action="store_true", help="no GPU: full precision both ways (checks the code)")
    parser.add_argument("--skip-beams", action="store_true")
    parser.add_argument("--skip-old", action="store_true", help="the new path only")
    args = parser.parse_args(argv)
    common.show_logs()

    from lmsweep.models import LORA_TARGETS

    architecture = common.SHAPES[args.shape][0]
    base = common.build(args.shape, args.work / args.shape)
    adapter = common.random_adapter(base, args.work / f"{args.shape}-adapter", LORA_TARGETS[architecture])
    prompts = common.records(args.prompts, seed=2)
    settings = [("baseline", {**SAMPLING, "max_new_tokens": args.new_tokens})]
    if not args.skip_beams:
        settings.append(("num_beams_8", {**SAMPLING, "num_beams": 8, "max_new_tokens": args.new_tokens}))
    device = "cpu" if args.cpu else "cuda"
    load = common.load_settings(load_in_4bit=not args.cpu)
    results = common.Results(common.out_dir() / f"bench_generate_{args.shape}.json", shape=args.shape,
                             command=" ".join(["python bench/generate.py", *(sys.argv[1:] if argv is None else argv)]))
    ppl_records = common.records(32, seed=3)
    old_ppl, old_nll = None, None
    if not args.skip_old:
        with common.cudnn_attention():
            old_ppl, old_nll = run_path(
                results, "old: 4-bit + adapter, batch 8", base, adapter, load, False, prompts, settings,
                args.old_batch, 2 * args.old_batch, device, ppl_records, old_sampling=True)
    label = "new: merged bf16, batch auto"
    new_ppl, new_nll = run_path(results, label, base, adapter, load, True, prompts,
                                settings, "auto", None, device, ppl_records, library_sampling=True)
    if args.skip_old:
        results.path.write_text(__import__("json").dumps(results.data, indent=2, default=str))
        results.table(["path", "config", "prompts", "batch", "tokens_per_s", "ms_per_step", "gpu_busy", "load_s",
                       "peak_gib"])
        return
    per_example = [abs(a.nll - b.nll) / max(abs(a.nll), 1e-9) for a, b in zip(old_nll, new_nll)]
    results.data["perplexity"] = {"as_trained": old_ppl, "merged": new_ppl,
                                  "relative_difference": abs(new_ppl - old_ppl) / old_ppl,
                                  "largest_per_example_nll_difference": max(per_example)}
    rows = results.data["rows"]
    for name, _ in settings:
        old = next(r for r in rows if r["config"] == name and r["path"].startswith("old"))
        new = next(r for r in rows if r["config"] == name and r["path"].startswith("new"))
        results.data.setdefault("ratios", {})[name] = new["tokens_per_s"] / old["tokens_per_s"]
    results.add(path="summary", config="ratios new/old", **{f"{k}_speedup": v for k, v in results.data["ratios"].items()})
    results.table(["path", "config", "prompts", "batch", "tokens_per_s", "ms_per_step", "gpu_busy", "load_s",
                   "peak_gib"])
    print(f"perplexity as trained {old_ppl:.4f}, merged {new_ppl:.4f}: relative difference "
          f"{results.data['perplexity']['relative_difference']:.2e}; speedups {results.data['ratios']}")


if __name__ == "__main__":
    main()

"""Generate answers for every test prompt under one decoding config (rule generate).

    python scripts/generate.py --test results/prepare_data/test.jsonl \
        --base-model NousResearch/Llama-2-7b-hf --adapter results/finetune/llama2_7b/adapter \
        --settings '{"do_sample": true, "top_k": 50, "num_beams": 1, "temperature": 0.8, "max_new_tokens": 256}' \
        --out predictions.jsonl

Without --adapter the base model alone generates (the `base` variant). The
generation config is lmsweep's own (transformers' defaults, then --settings);
--model-decoding-defaults takes the model folder's generation_config.json
for the fields --settings leaves unset instead. Writes one JSON line per test
record, and <out minus .jsonl>.info.json: the effective generation config,
the model defaults it overrode, truncation counts and timings.
"""

import argparse
import json
import time


def run(
    test_path: str,
    base_model: str,
    adapter: str | None,
    out_path: str,
    info_path: str,
    generation: dict,
    load: dict,
    batch_size: int,
    seed: int,
    replicate: int = 0,
    device: str = "auto",
    threads: int = 1,
    labels: dict | None = None,
) -> dict:
    started = time.perf_counter()
    from lmsweep.models import load_for_step

    model, tokenizer, device = load_for_step(base_model, adapter, load, device, threads, seed, padding_side="left",
                                             name=(labels or {}).get("model", ""),
                                             merge=load.get("inference") == "merged")
    from lmsweep.files import library_versions, read_jsonl, write_json, write_jsonl
    from lmsweep.generation import build_generation_config, effective_settings, generate
    from lmsweep.models import inference_path
    from lmsweep.prompts import format_prompt

    records = read_jsonl(test_path)
    config, overridden = build_generation_config(
        generation["settings"], model.generation_config if hasattr(model, "generation_config") else None,
        tokenizer, model_defaults=generation.get("decoding_defaults") == "model",
    )
    for key, (theirs, ours) in sorted(overridden.items()):
        print(f"warning: the model folder's generation config sets {key}={theirs!r}; this run uses {ours!r} "
              "(decoding_defaults: library), as for every model")
    loaded = time.perf_counter()
    results = generate(model, tokenizer, records, generation["settings"], batch_size, seed, replicate,
                       generation_config=config)
    finished = time.perf_counter()
    effective = effective_settings(config)
    meta = {**(labels or {}), "settings": generation["settings"], "generation_config": effective,
            "sweep": generation.get("sweep"), "seed": seed, "replicate": replicate,
            "base_model": base_model, "adapter": adapter, "inference": inference_path(load, adapter),
            "versions": library_versions()}
    write_jsonl(out_path, [
        {"id": r["id"], "prompt": format_prompt(r), "reference": r["output"], **result, **meta}
        for r, result in zip(records, results)
    ])
    new_tokens = sum(r["new_tokens"] for r in results)
    info = {
        **meta,
        "n_examples": len(records),
        "overridden_model_defaults": {k: {"model": t, "used": o} for k, (t, o) in sorted(overridden.items())},
        "hit_max_new_tokens": sum(r["hit_max_new_tokens"] for r in results),
        "prompts_cut": sum(1 for r in results if r["prompt_tokens_cut"]),
        "batch_sizes": sorted({r["batch_size"] for r in results}),
        "sampling": results[0]["sampling"] if results else None,
        "new_tokens": new_tokens,
        "seconds": {"load": round(loaded - started, 3), "generate": round(finished - loaded, 3)},
        "new_tokens_per_second": round(new_tokens / max(finished - loaded, 1e-9), 2),
        "device": str(device),
    }
    write_json(info_path, info)
    share = info["hit_max_new_tokens"] / max(1, len(records))
    if share > 0.1:
        print(f"warning: {info['hit_max_new_tokens']} of {len(records)} answers ({share:.0%}) stopped at "
              f"max_new_tokens={config.max_new_tokens} before their end: raise decoding.baseline.max_new_tokens "
              "if the answers should be longer")
    print(f"{len(records)} predictions written to {out_path}")
    return info


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", required=True, type=existing_path, help="test.jsonl from prepare_data")
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder; omit for the base model")
    parser.add_argument("--settings", required=True, type=json.loads, help="generate() settings as JSON")
    parser.add_argument("--out", required=True, help="predictions .jsonl")
    parser.add_argument("--batch-size", type=lambda v: v if v == "auto" else int(v), default="auto",
                        help="prompts per generate() call, or auto: what fits the GPU's free memory (default)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--replicate", type=int, default=0, help="seed replicate (sampled configs)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--load-in-4bit", action="store_true")
    parser.add_argument("--model-decoding-defaults", action="store_true",
                        help="take unset decoding fields from the model's generation_config.json")
    parser.add_argument("--merge", action="store_true",
                        help="merge the adapter into the (dequantized) base before generating (inference.weights: merged)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.out.endswith(".jsonl"):
        parser.error(f"--out {args.out} must end in .jsonl")
    load = {"revision": None, "trust_remote_code": False, "quantization": {"load_in_4bit": args.load_in_4bit},
            "inference": "merged" if args.merge else "as_trained"}
    generation = {"settings": args.settings,
                  "decoding_defaults": "model" if args.model_decoding_defaults else "library"}
    run(args.test, args.base_model, args.adapter, args.out, args.out.removesuffix(".jsonl") + ".info.json",
        generation, load, args.batch_size, args.seed, args.replicate, args.device, args.threads)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.gpus import claim
    from lmsweep.warm import delegate

    claim(int(snakemake.resources.get("gpu", 0) or 0))  # its own GPU on a machine with several (local runs)
    delegate()

    log_to(snakemake.log[0])
    p, w = snakemake.params, snakemake.wildcards
    run(
        snakemake.input.test, p.base_model, snakemake.input.get("adapter") or None, snakemake.output.predictions,
        snakemake.output.info, p.generation, p.load, p.batch_size, p.seed, int(w.rep), p.device, snakemake.threads,
        labels={"model": w.model, "variant": w.variant, "decoding": w.decoding},
    )
elif __name__ == "__main__":
    main()

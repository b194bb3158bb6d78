"""Merge a LoRA adapter into its base model's weights, once per model, for fast inference (rule merge_adapter).

    python scripts/merge_adapter.py --base-model NousResearch/Llama-2-7b-hf \
        --adapter results/finetune/llama2_7b/adapter --out results/merge_adapter/llama2_7b --load-in-4bit

A 4-bit base (QLoRA) is dequantized first: the adapter was trained against the
quantized weights, so it is merged into those, in the compute dtype (bf16).
The folder loads with plain transformers (AutoModelForCausalLM.from_pretrained).
"""

import argparse


def run(base_model: str, adapter: str, out_dir: str, load: dict, seed: int, device: str = "auto",
        threads: int = 1) -> dict:
    import time

    started = time.perf_counter()
    from lmsweep.models import load_for_step

    model, tokenizer, device = load_for_step(base_model, adapter, load, device, threads, seed, merge=True)
    from lmsweep.files import atomic_path, library_versions, write_json

    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {
            "base_model": base_model, "adapter": adapter, "model_source": load.get("source"),
            "dequantized_from_4bit": bool(load["quantization"].get("load_in_4bit")),
            "dtype": str(next(model.parameters()).dtype), "seconds": round(time.perf_counter() - started, 1),
            "versions": library_versions(),
        }
        write_json(tmp / "merge_info.json", info)
    print(f"merged {adapter} into {base_model}: {out_dir} ({info['dtype']}, {info['seconds']} s)")
    return info


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--adapter", required=True, type=existing_path)
    parser.add_argument("--out", required=True, help="output folder of the merged model")
    parser.add_argument("--load-in-4bit", action="store_true", help="the adapter was trained on a 4-bit base (QLoRA)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    args = parser.parse_args(argv)
    load = {"revision": None, "trust_remote_code": False, "quantization": {"load_in_4bit": args.load_in_4bit}}
    run(args.base_model, args.adapter, args.out, load, args.seed, args.device)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.gpus import claim
    from lmsweep.warm import delegate

    claim(int(snakemake.resources.get("gpu", 0) or 0))  # its own GPU on a machine with several (local runs)
    delegate()

    log_to(snakemake.log[0])
    p = snakemake.params
    run(p.base_model, snakemake.input.adapter, snakemake.output[0], p.load, p.seed, p.device, snakemake.threads)
elif __name__ == "__main__":
    main()

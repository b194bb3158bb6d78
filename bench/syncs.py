"""Where a decoding step makes the host wait for the GPU: each synchronizing call, by source line, per step.

    python bench/syncs.py --shapes tiny,tiny_mistral,tiny_phi     # GPU machine (seconds: small models)

A call that synchronizes (a .item(), a bool of a CUDA tensor, a copy to the
host) empties the GPU's queue: until the host has launched the next kernels
the GPU idles, so with a few of them per step a decode step cannot overlap
the host's launches with the GPU's work. PyTorch's sync debug mode warns at
each one; this runs lmsweep's generate() (merged-path model, the study's
baseline sampling config, batch of 16) with max_new_tokens 4 and 12 and
counts the warnings by the Python line that made them: the difference over 8
steps is what each decode step pays. Small models of the study's
architectures (the same code paths: Mistral's sliding window and grouped
key/value heads, Phi's partial rotary). Writes OUT/bench_syncs.json.
"""

import argparse
import collections
import traceback
import warnings
from pathlib import Path

import common

SAMPLING = {"do_sample": True, "top_k": 50, "num_beams": 1, "temperature": 0.8}


def count_syncs(model, tokenizer, prompts, new_tokens: int) -> collections.Counter:
    import torch

    from lmsweep.generation import generate

    sites = collections.Counter()
    original = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" not in str(message):
            return original(message, category, filename, lineno, file, line)
        frames = [f for f in traceback.extract_stack()[:-1] if "warnings" not in f.filename]
        site = frames[-1] if frames else None
        sites[f"{Path(site.filename).parent.name}/{Path(site.filename).name}:{site.lineno} {site.name}"] += 1

    warnings.showwarning = record
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            generate(model, tokenizer, prompts, {**SAMPLING, "max_new_tokens": new_tokens}, len(prompts), seed=1)
    finally:
        torch.cuda.set_sync_debug_mode(0)
        warnings.showwarning = original
    return sites


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="tiny,tiny_mistral,tiny_phi")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lmsweep-bench"))
    args = parser.parse_args(argv)
    common.show_logs()
    from lmsweep.models import load_for_step

    results = common.Results(common.out_dir() / "bench_syncs.json", command="python bench/syncs.py " + args.shapes)
    for shape in args.shapes.split(","):
        folder = common.build(shape, args.work / shape)
        model, tokenizer, _ = load_for_step(str(folder), None, common.load_settings(), "cuda", threads=4, seed=0,
                                            padding_side="left")
        prompts = common.records(16, seed=2)
        count_syncs(model, tokenizer, prompts, 4)  # warm-up
        short, long = count_syncs(model, tokenizer, prompts, 4), count_syncs(model, tokenizer, prompts, 12)
        per_step = {site: (long[site] - short[site]) / 8 for site in long if long[site] != short[site]}
        once = {site: short[site] for site in short if long[site] == short[site]}
        results.add(shape=shape, syncs_per_decode_step=sum(per_step.values()), per_step=per_step, per_call=once)
        del model


if __name__ == "__main__":
    main()

"""Why a generate job's GPU idles, and what fills it: decoding variants of the merged model, each in a fresh process.

    python bench/decode.py --shape llama2_7b                  # on the GPU machine (one H200: about 4 minutes)
    python bench/decode.py --shape tiny --cpu --new-tokens 8  # checks the code on a CPU

A generate job is a fresh process whose first generate() call is all it runs.
So each variant runs in its own process, as the job does: load the merged
bf16 model through lmsweep's loader, then lmsweep's generate() on every prompt
at the study's baseline (sampling, top_k 50, temperature 0.8; --num-beams N:
beam sampling) with
generation.batch_size auto, twice. The first call is what a job gets; the
second shows what is left once the process is warm. Variants:

- cudnn: transformers' dynamic key/value cache, with PyTorch's attention free
  to pick its cuDNN kernel (lmsweep before lmsweep.models.attention_kernels);
- dynamic: the same without cuDNN's attention (lmsweep's path);
- static: a static cache allocated once at full length, eager;
- compile: the static cache with transformers' automatic torch.compile of the
  decoding step (mode reduce-overhead: CUDA graphs). Run it twice
  (compile,compile): the second process finds the first's compiled code in
  the inductor's cache on disk, as a study's later jobs would.

Each row: tokens/s, ms per decode step, GPU busy (NVML, sampled every 50 ms),
the allocator's calls to the driver (memory_stats num_device_alloc), peak
memory. --profile VARIANTS adds a profile (torch.profiler) of a short call of the
same batch once warm: the GPU's kernel time against the wall time, and the
ops that hold the host. Writes OUT/bench_decode_<shape>.json.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import common

SAMPLING = {"do_sample": True, "top_k": 50, "num_beams": 1, "temperature": 0.8}
VARIANTS = ("cudnn", "dynamic", "static", "compile")


def configure(variant: str, settings: dict, tokenizer):
    from lmsweep.generation import build_generation_config

    config, _ = build_generation_config(settings, tokenizer=tokenizer)
    if variant in ("static", "compile"):
        config.cache_implementation = "static"
        config.disable_compile = variant == "static"
    return config


def device_calls():
    import torch

    if not torch.cuda.is_available():
        return {}
    stats = torch.cuda.memory_stats()
    return {k: stats.get(k, 0) for k in ("num_device_alloc", "num_device_free", "num_alloc_retries")}


def run_variant(args) -> None:
    """One variant in this (fresh) process: load, then generate() twice; one JSON line per call on stdout."""
    common.show_logs(sys.stderr)  # lmsweep's log lines on stderr: stdout carries the rows
    with common.cudnn_attention() if args.variant == "cudnn" else contextlib.nullcontext():
        measure_variant(args)


def measure_variant(args) -> None:
    from lmsweep.models import load_for_step

    started = time.perf_counter()
    model, tokenizer, device = load_for_step(str(args.model), None, common.load_settings(),
                                             "cpu" if args.cpu else "cuda", threads=8, seed=0, padding_side="left")
    import torch

    from lmsweep.generation import generate
    from lmsweep.prompts import Prompter

    load_s = time.perf_counter() - started
    prompts = common.records(args.prompts, seed=2)
    settings = {**SAMPLING, "num_beams": args.num_beams, "max_new_tokens": args.new_tokens}
    for call in range(1, args.calls + 1):
        config = configure(args.variant, settings, tokenizer)
        before = device_calls()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        with common.BusyMeter() as meter:
            out = generate(model, Prompter("alpaca", tokenizer), prompts, settings, "auto", seed=1, generation_config=config)
        after = device_calls()
        batch = max(r["batch_size"] for r in out)
        tokens = sum(r["new_tokens"] for r in out)
        steps = args.new_tokens * -(-len(out) // batch)
        row = {"variant": args.variant, "call": call, "num_beams": args.num_beams, "prompts": len(out), "batch": batch,
               "new_tokens": tokens,
               "seconds": round(meter.seconds, 2), "tokens_per_s": tokens / meter.seconds,
               "ms_per_step": 1000 * meter.seconds / steps, "gpu_busy": meter.busy, "load_s": round(load_s, 1),
               **{k: after[k] - before[k] for k in after},
               "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None,
               "reserved_gib": round(torch.cuda.memory_reserved() / 2**30, 1) if torch.cuda.is_available() else None}
        print("ROW " + json.dumps(row), flush=True)
    if args.profile:
        print("ROW " + json.dumps(profile(model, tokenizer, prompts, settings, args)), flush=True)


def profile(model, tokenizer, prompts, settings, args) -> dict:
    """Kernel time against wall time over a short generate() call of the same batch, and the top ops."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from lmsweep.generation import generate
    from lmsweep.prompts import Prompter

    steps = min(args.new_tokens, 16)
    short = {**settings, "max_new_tokens": steps}
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    config = configure(args.variant, short, tokenizer)
    generate(model, Prompter("alpaca", tokenizer), prompts, short, "auto", seed=1, generation_config=config)  # this length's warm-up
    config = configure(args.variant, short, tokenizer)
    with torch_profile(activities=activities) as prof:
        started = time.perf_counter()
        generate(model, Prompter("alpaca", tokenizer), prompts, short, "auto", seed=1, generation_config=config)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - started
    averages = prof.key_averages()
    kernel_us = sum(e.self_device_time_total for e in averages if e.device_type == torch.autograd.DeviceType.CUDA)
    if not kernel_us:  # kernels counted under the ops that launched them
        kernel_us = sum(e.self_device_time_total for e in averages)

    def top(key, n=12):
        rows = sorted(averages, key=lambda e: getattr(e, key), reverse=True)[:n]
        return [{"op": e.key[:90], "calls": e.count, "ms": round(getattr(e, key) / 1000, 2)} for e in rows]

    return {"variant": args.variant, "call": "profile", "steps": steps, "wall_s": round(wall, 3),
            "ms_per_step": 1000 * wall / steps, "kernel_ms_per_step": kernel_us / 1000 / steps,
            "kernel_share": kernel_us / 1e6 / wall, "top_self_cpu": top("self_cpu_time_total"),
            "top_self_device": top("self_device_time_total")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="llama2_7b", choices=sorted(common.SHAPES))
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--num-beams", type=int, default=1, help="beam sampling with this many beams (default: 1)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--profile", default="", help="variants to profile (comma-separated)")
    parser.add_argument("--calls", type=int, default=2, help="generate() calls per process")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lmsweep-bench"), help="model folders")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds for one variant's process (default: no limit)")
    parser.add_argument("--cpu", action="store_true", help="no GPU (checks the code)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        run_variant(args)
        return

    command = " ".join(["python bench/decode.py", *(sys.argv[1:] if argv is None else argv)])
    name = args.shape + (f"_beams{args.num_beams}" if args.num_beams > 1 else "")
    results = common.Results(common.out_dir() / f"bench_decode_{name}.json", shape=args.shape, command=command)
    started = time.perf_counter()
    # The merged model is a plain bf16 model of the shape: random weights stand in for base + adapter.
    model = common.build(args.shape, args.work / f"{args.shape}-plain")
    results.data["build_s"] = round(time.perf_counter() - started, 1)
    profiled = set(filter(None, args.profile.split(",")))
    for process, variant in enumerate(filter(None, args.variants.split(",")), 1):
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant}; choose from {', '.join(VARIANTS)}")
        cmd = [sys.executable, __file__, "--variant", variant, "--model", str(model), "--shape", args.shape,
               "--prompts", str(args.prompts), "--new-tokens", str(args.new_tokens), "--calls", str(args.calls),
               "--num-beams", str(args.num_beams)]
        cmd += ["--profile", "yes"] if variant in profiled else ["--profile", ""]
        cmd += ["--cpu"] if args.cpu else []
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        # A stage cut at its time limit stops this process with SIGTERM: the variant's process goes with it.
        signal.signal(signal.SIGTERM, lambda *_: (child.kill(), sys.exit(124)))
        try:
            stdout, stderr = child.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            stdout, stderr = child.communicate()
            stderr = f"over {args.timeout} s\n" + stderr
        for line in stdout.splitlines():
            if line.startswith("ROW "):
                results.add(**json.loads(line[4:]), process=process, process_s=round(time.perf_counter() - started, 1))
        if child.returncode:
            results.add(variant=variant, error=f"exit {child.returncode}", stderr=stderr[-3000:])
    rows = [r for r in results.data["rows"] if isinstance(r.get("call"), int)]
    base = next((r for r in rows if r["variant"] == "cudnn" and r["call"] == 1), None)
    for row in rows:
        if base:
            row["vs_old_first_call"] = row["tokens_per_s"] / base["tokens_per_s"]
    results.path.write_text(json.dumps(results.data, indent=2, default=str))
    results.table(["process", "variant", "call", "batch", "tokens_per_s", "ms_per_step", "gpu_busy", "num_device_alloc",
                   "peak_gib", "reserved_gib", "vs_old_first_call", "process_s"])
    for row in results.data["rows"]:
        if row.get("call") == "profile":
            print(f"profile {row['variant']}: {row['ms_per_step']:.1f} ms per step, kernels "
                  f"{row['kernel_ms_per_step']:.1f} ms ({row['kernel_share']:.0%}); top host ops: "
                  + ", ".join(f"{o['op']} {o['ms']} ms" for o in row["top_self_cpu"][:5]))


if __name__ == "__main__":
    main()

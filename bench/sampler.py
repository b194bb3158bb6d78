"""What the sampler's fix costs: one sampling step's noise and draw, before and after, in the same run.

    python bench/sampler.py                        # CPU (and CUDA when torch sees it)
    python bench/sampler.py --rows 200 --vocab 32000,51200 --repeats 50

Before: 24 bits of each hash, (bits + 0.5) / 2**24 in float32, which rounds to
1.0 for the largest value (an infinite Gumbel draw). After: 23 bits,
(bits + 0.5) * 2**-23, exact in float32 and strictly inside (0, 1)
(lmsweep.sampling.to_uniform). Both run the full per-step work of
PerExampleSampler (hashes, noise, warpers, argmax) at generate's batch shape,
in alternating rounds, each timed as the median of its steps. Writes
OUT/bench_sampler.json and prints the ratio after / before per device and
vocabulary size.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import common  # noqa: F401  (puts scripts/ on sys.path)


def old_uniforms(keys, step: int, vocab: int, device):
    """The sampler's uniforms before the fix (kept here only to time it)."""
    import torch

    from lmsweep.sampling import _M32, mix32

    row = mix32(keys ^ mix32(torch.full_like(keys, (step * 0x9E3779B9) & _M32)))
    token = mix32(torch.arange(vocab, dtype=torch.int64, device=device))
    bits = mix32(row[:, None] ^ token[None, :]) >> 8
    return (bits.to(torch.float32) + 0.5) / float(1 << 24)


def time_steps(sampler, uniforms, scores, repeats: int, device: str) -> list:
    import torch

    from lmsweep import sampling

    seconds = []
    original = sampling.uniforms
    sampling.uniforms = uniforms
    try:
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            sampler(None, scores)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - started)
    finally:
        sampling.uniforms = original
    return seconds


def main(argv=None) -> None:
    import torch
    from transformers import GenerationConfig

    from lmsweep import sampling

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200, help="prompts in one generate() call")
    parser.add_argument("--vocab", default="32000,51200", help="vocabulary sizes (Llama-2/Mistral, Phi-2)")
    parser.add_argument("--repeats", type=int, default=10, help="steps timed per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds, before and after alternating")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    config = GenerationConfig(do_sample=True, num_beams=1, top_k=50, temperature=0.8)
    results = []
    for device in devices:
        for vocab in [int(v) for v in args.vocab.split(",")]:
            scores = torch.randn(args.rows, vocab, device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
            sampler = sampling.PerExampleSampler(config)
            sampler.start(list(range(args.rows)), device)
            times = {"before": [], "after": []}
            time_steps(sampler, sampling.uniforms, scores, 3, device)  # warm-up, not timed
            for round_ in range(args.rounds):  # alternating, so that drift of a shared machine hits both alike
                order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
                for which in order:
                    uniforms = old_uniforms if which == "before" else sampling.uniforms
                    times[which] += time_steps(sampler, uniforms, scores, args.repeats, device)
            row = {"device": device, "vocab": vocab, "rows": args.rows, "steps": args.rounds * args.repeats,
                   **{f"{k}_ms": 1000 * statistics.median(v) for k, v in times.items()}}
            row["ratio_after_before"] = row["after_ms"] / row["before_ms"]
            results.append(row)
            print(f"{device:4} vocab {vocab:6}: before {row['before_ms']:.3f} ms, after {row['after_ms']:.3f} ms "
                  f"per step of {args.rows} rows: ratio {row['ratio_after_before']:.3f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    (args.out / "bench_sampler.json").write_text(json.dumps({"card": card, "torch": torch.__version__,
                                                             "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

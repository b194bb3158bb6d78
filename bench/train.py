"""Training throughput: the old QLoRA settings against bf16 LoRA and the new QLoRA settings, in one run.

    python bench/train.py --shape llama2_7b --steps 8                  # on the GPU machine
    python bench/train.py --shape tiny --steps 4 --cpu                 # checks the code on a CPU

Every run is lmsweep.train.train_adapter (TRL's SFTTrainer, PEFT LoRA r 16 on every
projection), on the same Alpaca-like records with the same seed, 16 examples
per optimizer step:

- old: QLoRA as lmsweep ran it: 4-bit base, 4 examples x 4 accumulation steps,
  padded batches, activation checkpointing, paged 8-bit AdamW, cuDNN's attention allowed;
- bf16: the base in bf16 (a GPU that holds it), 16 examples in one
  padding-free batch, no activation checkpointing, fused AdamW;
- bf16_padded: the same with padded batches (what padding-free buys);
- qlora: QLoRA for small GPUs, with padding-free batches of 16 and
  checkpointing only if asked (--qlora-checkpointing).

Step times are taken after the first two steps (warm-up); non-pad tokens/s
counts the tokens of the examples each step trains on. Prints a table and
writes OUT/bench_train_<shape>.json.
"""

import argparse
import contextlib
import gc
import sys
import time
from pathlib import Path

import common


class StepClock:
    """A TrainerCallback: the wall time of every optimizer step."""

    def __init__(self):
        self.times = []

    def __getattr__(self, name):  # every other callback event: nothing to do
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_step_begin(self, args, state, control, **kwargs):
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="llama2_7b", choices=sorted(common.SHAPES))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lmsweep-bench"))
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, help="run only these of old, bf16, bf16_padded, qlora")
    parser.add_argument("--qlora-checkpointing", action="store_true")
    args = parser.parse_args(argv)
    common.show_logs()

    import torch

    from lmsweep import train
    from lmsweep.answer_nll import encode
    from lmsweep.io import write_jsonl
    from lmsweep.models import load_tokenizer
    from lmsweep.settings import Lora, Training

    base = common.build(args.shape, args.work / args.shape)
    data = common.records(16 * args.steps + 16, seed=4)
    write_jsonl(args.work / "train.jsonl", data)
    tokenizer = load_tokenizer(str(base))
    tokens_per_example = sum(len(encode(tokenizer, r).ids) for r in data) / len(data)
    lora = Lora(r=16, alpha=32, dropout=0.05, target_modules=None, modules_to_save=[])
    common_training = {"epochs": 1, "max_steps": args.steps, "learning_rate": 2e-4, "lr_scheduler": "constant",
                       "warmup": 0, "weight_decay": 0.0, "max_length": 512, "logging_steps": 1, "save_steps": 10000,
                       "validation_size": 0}
    # name: (training settings, base loaded in 4 bit)
    runs = {
        "old": ({"batch_size": 4, "gradient_accumulation_steps": 4, "gradient_checkpointing": True,
                 "optim": "paged_adamw_8bit", "padding_free": False}, True),
        "bf16": ({"batch_size": 16, "gradient_accumulation_steps": 1, "gradient_checkpointing": False,
                  "optim": "adamw_torch_fused", "padding_free": True}, False),
        "bf16_padded": ({"batch_size": 16, "gradient_accumulation_steps": 1, "gradient_checkpointing": False,
                         "optim": "adamw_torch_fused", "padding_free": False}, False),
        "qlora": ({"batch_size": 16, "gradient_accumulation_steps": 1, "gradient_checkpointing": args.qlora_checkpointing,
                   "optim": "paged_adamw_8bit", "padding_free": True}, True),
    }
    results = common.Results(common.out_dir() / f"bench_train_{args.shape}.json", shape=args.shape,
                             tokens_per_example=tokens_per_example,
                             command=" ".join(["python bench/train.py", *(sys.argv[1:] if argv is None else argv)]))
    for name, (training, load_in_4bit) in runs.items():
        if args.only and name not in args.only:
            continue
        if args.cpu:
            load_in_4bit = False
        clock = StepClock()
        folder = args.work / f"train-{name}"
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        old_attention = common.cudnn_attention() if name == "old" else contextlib.nullcontext()
        with old_attention, common.BusyMeter() as meter:
            info = train.train_adapter(
                args.work / "train.jsonl", str(base), folder / "adapter", folder / "train_log.csv",
                folder / "checkpoints", model_name=args.shape, lora=lora,
                training=Training(**common_training, **training), load=common.load_settings(load_in_4bit),
                seed=0, device="cpu" if args.cpu else "cuda", threads=8, callbacks=[clock],
                retrain=True,  # a run of the same settings left in --work is timed again, not reloaded
            )
        steady = clock.times[2:] or clock.times
        step_s = sum(steady) / len(steady)
        results.add(run=name, steps=len(clock.times), step_s=step_s,
                    nonpad_tokens_per_s=16 * tokens_per_example / step_s, gpu_busy=meter.busy,
                    peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None,
                    total_s=round(time.perf_counter() - started, 1), first_loss=info.train_loss,
                    losses=[float(line.split(",")[2]) for line in
                            (folder / "train_log.csv").read_text().splitlines()[1:]],
                    settings={**training, "load_in_4bit": load_in_4bit})
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    rows = {r["run"]: r for r in results.data["rows"]}
    if "old" in rows:
        for name in ("bf16", "bf16_padded", "qlora"):
            if name in rows:
                results.data.setdefault("speedup_over_old", {})[name] = rows["old"]["step_s"] / rows[name]["step_s"]
    results.table(["run", "steps", "step_s", "nonpad_tokens_per_s", "gpu_busy", "peak_gib", "total_s"])
    print("speedup over old:", results.data.get("speedup_over_old"))
    results.path.write_text(__import__("json").dumps(results.data, indent=2, default=str))


if __name__ == "__main__":
    main()

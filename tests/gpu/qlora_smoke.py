"""The real-model code path on a GPU: 4-bit QLoRA training, 4-bit generation and perplexity.

No weights can be downloaded on the lent GPU machines, so the base model is a
real architecture (LlamaForCausalLM, or Mistral/Phi) with random weights at a
size where 4-bit matters (~0.5-1 B parameters), with lmsweep's BPE tokenizer
trained on the demo task set. The three GPU steps run through lmsweep's own
steps (lmsweep.steps.<rule>.run with its typed Settings and Paths), as the
workflow's jobs call them, with quantization.load_in_4bit: true; the adapter
trains embeddings and head in full (random-init base), as the demo does.

    python tests/gpu/qlora_smoke.py --out /tmp/qlora --architecture llama --hidden 2048 --layers 12

Prints one JSON line of results (times, losses, memory) at the end.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


def load_4bit(load_in_4bit: bool = True):
    """QLoRA's load: NF4 with double quantization, bf16 compute, the adapter beside the 4-bit base."""
    from lmsweep.settings import Load, Quantization

    return Load(revision=None, snapshot=None, source=None, trust_remote_code=False,
                quantization=Quantization(load_in_4bit=load_in_4bit, quant_type="nf4", double_quant=True,
                                          compute_dtype="bfloat16"),
                weights="as_trained", merged_folder=False, merged_from_4bit=False)


def finetune_job(out: Path, base: Path, load, steps: int, device: str = "cuda"):
    from lmsweep.settings import Lora, Training
    from lmsweep.steps import finetune

    lora = Lora(r=16, alpha=32, dropout=0.05, target_modules=None, modules_to_save=["embed_tokens", "lm_head"])
    training = Training(epochs=1, max_steps=steps, batch_size=16, gradient_accumulation_steps=1,
                        learning_rate=1e-3, lr_scheduler="linear", warmup=0.05, weight_decay=0.0,
                        optim="paged_adamw_8bit", max_length=256, gradient_checkpointing=True, padding_free=False,
                        logging_steps=5, save_steps=1000, validation_size=0)
    settings = finetune.Settings(model="smoke", base_model=str(base), load=load, lora=lora, training=training,
                                 seed=0, device=device, checkpoints=str(out / "ckpt"), processes=1)
    paths = finetune.Paths(train=str(out / "train.jsonl"), base=[], adapter=str(out / "adapter"),
                           loss=str(out / "loss.csv"))
    return settings, paths


def generate_job(out: Path, base: Path, load, variant: str, adapter, device: str = "cuda"):
    from lmsweep.settings import Decoding, RunLabels
    from lmsweep.steps import generate

    decoding = Decoding(settings={"do_sample": True, "top_k": 50, "num_beams": 1, "temperature": 0.8,
                                  "max_new_tokens": 32}, defaults="library", sweep=None)
    settings = generate.Settings(labels=RunLabels(model="smoke", variant=variant, decoding="baseline", replicate=0),
                                 base_model=str(base), load=load, decoding=decoding, batch_size=16, seed=0,
                                 device=device)
    paths = generate.Paths(test=str(out / "test.jsonl"), base=[], adapter=adapter or [],
                           predictions=str(out / f"gen_{variant}.jsonl"), info=str(out / f"gen_{variant}.info.json"))
    return settings, paths


def perplexity_job(out: Path, base: Path, load, variant: str, adapter, device: str = "cuda"):
    from lmsweep.steps import perplexity

    settings = perplexity.Settings(model="smoke", variant=variant, base_model=str(base), load=load, batch_size=8,
                                   seed=0, device=device)
    paths = perplexity.Paths(test=str(out / "test.jsonl"), base=[], adapter=adapter or [],
                             summary=str(out / f"ppl_{variant}.json"),
                             per_example=str(out / f"ppl_{variant}.per_example.csv"))
    return settings, paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--architecture", default="llama", choices=["llama", "mistral", "phi"])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()

    import torch

    assert torch.cuda.is_available(), "this smoke test needs a CUDA GPU"
    from lmsweep import tiny
    from lmsweep.data import split, validate
    from lmsweep.demo_data import make_tasks
    from lmsweep.io import write_jsonl
    from lmsweep.prompts import format_prompt
    from lmsweep.runtime.logs import to_terminal
    from lmsweep.settings import Build

    to_terminal()  # the steps' log lines on stderr; stdout gets the results
    out = args.out
    records, _ = validate(make_tasks(1200, seed=0))
    train, test = split(records, test_size=32, seed=0)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    spec = Build(architecture=args.architecture, vocab_size=2048, hidden_size=args.hidden,
                 intermediate_size=args.hidden * 4, num_layers=args.layers, num_heads=args.hidden // 128,
                 max_position_embeddings=512)
    base = out / "base"
    tiny.build(spec, [format_prompt(r) + r["output"] for r in train], seed=0, out_dir=base)
    n_params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(base).parameters())

    from lmsweep.steps import finetune, generate, perplexity

    load = load_4bit()
    results = {"architecture": args.architecture, "parameters": n_params, "gpu": torch.cuda.get_device_name()}

    torch.cuda.reset_peak_memory_stats()
    start = time.time()
    info = finetune.run(*finetune_job(out, base, load, args.steps))
    results["finetune_s"] = round(time.time() - start, 1)
    results["finetune_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    results["train_loss"] = info.train_loss
    losses = [float(line.split(",")[2]) for line in (out / "loss.csv").read_text().splitlines()[1:]]
    results["loss_first_last"] = [losses[0], losses[-1]]

    for variant, adapter in (("finetuned", str(out / "adapter")), ("base", None)):
        start = time.time()
        generate.run(*generate_job(out, base, load, variant, adapter))
        results[f"generate_{variant}_s"] = round(time.time() - start, 1)
        ppl = perplexity.run(*perplexity_job(out, base, load, variant, adapter))
        results[f"perplexity_{variant}"] = round(ppl.perplexity, 3)
    predictions = [json.loads(line)["prediction"] for line in (out / "gen_finetuned.jsonl").read_text().splitlines()]
    results["nonempty_predictions"] = sum(bool(p.strip()) for p in predictions)
    results["example"] = predictions[:3]
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    results["target_modules"] = sorted(adapter_config["target_modules"])
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""The cost of a score job and of a cold job's start, on the GPU machine.

    python bench/score.py --pairs 200                 # GPU machine
    python bench/score.py --pairs 24 --cpu            # checks the code

BERTScore runs on a random-weight model of roberta-large's shape (24 layers,
hidden 1024; bert-score's default model for English, layer 17) with
lmsweep's tokenizer, through lmsweep.metrics as the score step runs it, with
BLEU and ROUGE-L beside it. A cold job's start is the import of what a
generate job imports, in a fresh process. Writes OUT/bench_score.json.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import common


def build_roberta(folder: Path) -> Path:
    import torch
    from transformers import RobertaConfig, RobertaModel

    from lmsweep.prompts import format_prompt
    from lmsweep.tiny import train_tokenizer

    if (folder / "config.json").exists():
        return folder
    tokenizer = train_tokenizer([format_prompt(r) + r["output"] for r in common.records(2000, seed=7)], 8000)
    tokenizer.add_special_tokens({"cls_token": "<s>", "sep_token": "</s>"})
    tokenizer.model_max_length = 512
    config = RobertaConfig(vocab_size=len(tokenizer) + 2, hidden_size=1024, num_hidden_layers=24,
                           num_attention_heads=16, intermediate_size=4096, max_position_embeddings=514,
                           pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lmsweep-bench"))
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args(argv)

    from lmsweep import metrics

    results = common.Results(common.out_dir() / "bench_score.json",
                             command=" ".join(["python bench/score.py", *(sys.argv[1:] if argv is None else argv)]))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers, peft, trl, bert_score, sacrebleu"],
                   check=True, env={"PYTHONPATH": ":".join(sys.path)})
    results.add(step="cold start: imports of a job", seconds=round(time.perf_counter() - started, 2))
    model = build_roberta(args.work / "roberta_large_shape")
    data = common.records(args.pairs, seed=5)
    predictions = [" ".join(r["output"].split()[:90]) for r in data]
    references = [r["output"] for r in data]
    device = "cpu" if args.cpu else "cuda"
    for attempt in ("first (loads the model)", "second"):
        started = time.perf_counter()
        metrics.bertscore(predictions, references, model_type=str(model), num_layers=17, batch_size=64,
                          device=device)
        results.add(step=f"BERTScore, {args.pairs} pairs, {attempt}", seconds=round(time.perf_counter() - started, 2))
    started = time.perf_counter()
    metrics.bleu(predictions, references)
    metrics.rouge_l(predictions, references)
    results.add(step=f"BLEU and ROUGE-L, {args.pairs} pairs", seconds=round(time.perf_counter() - started, 2))
    results.table(["step", "seconds"])


if __name__ == "__main__":
    main()

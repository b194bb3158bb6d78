"""What a training run records beside its adapter: its loss curves (training and validation), the examples
max_length cuts, whether its ranks agree, and what it cost.

Split from lmsweep.train, which runs the training itself.
"""

import logging

from lmsweep.io import atomic_path

log = logging.getLogger(__name__)


class TrainingSetupError(RuntimeError):
    """Training that cannot run as configured; the message names the key and the fix."""


def logged_loss(history) -> float | None:
    """Mean training loss over the logged steps, each logged loss weighted by the steps it averages.

    Not the Trainer's own training_loss, which after a resume averages only the
    steps trained by the resuming process: this number is the same for a run
    resumed from a checkpoint as for one never interrupted.
    """
    total, last = 0.0, 0
    for entry in history:
        if "loss" in entry:
            total += entry["loss"] * (entry["step"] - last)
            last = entry["step"]
    return total / last if last else None


def length_report(prompter, records, max_length: int) -> dict:
    """How `training.max_length` cuts the training examples, tokenized as TRL tokenizes them.

    An example longer than max_length loses its end, EOS included (the model
    never learns to stop there); one whose prompt alone fills max_length has no
    answer token left, and contributes nothing to the loss.
    """
    from lmsweep.answer_nll import encode

    lengths, prompts = [], []
    for record in records:
        encoded = encode(prompter, record)
        lengths.append(len(encoded.ids))
        prompts.append(encoded.n_prompt)
    ordered = sorted(lengths)
    return {
        "max_length": max_length,
        "examples": len(lengths),
        "truncated": sum(n > max_length for n in lengths),
        "no_answer_token": sum(p >= max_length for p in prompts),
        "longest": ordered[-1] if ordered else 0,
        "median": ordered[len(ordered) // 2] if ordered else 0,
        "longest_prompt": max(prompts, default=0),
    }


def check_lengths(report: dict, model_name: str) -> None:
    """Refuse a max_length that leaves no answer to learn; warn when it cuts many examples."""
    n, limit = report["examples"], report["max_length"]
    if n and report["no_answer_token"] == n:
        raise TrainingSetupError(
            f"model {model_name!r}: training.max_length {limit} leaves no answer token in any of the {n} training "
            f"examples (the longest prompt has {report['longest_prompt']} tokens, the longest example "
            f"{report['longest']}); raise training.max_length above {report['longest_prompt']}, "
            f"to {report['longest']} to cut none"
        )
    if report["truncated"]:
        share = report["truncated"] / n
        line = (f"training.max_length {limit} cuts {report['truncated']} of {n} training examples "
                f"({share:.0%}; their answers lose their end and EOS; longest {report['longest']} tokens, "
                f"median {report['median']})")
        if report["no_answer_token"]:
            line += f"; {report['no_answer_token']} keep no answer token at all"
        (log.warning if share > 0.05 else log.info)(line)


def ranks_agree(model) -> dict:
    """With several training processes: the backend, and whether every rank ended with the same trained weights.

    Data parallel training keeps the replicas equal by averaging gradients; a
    checksum of the trained parameters, gathered from every rank, shows it did.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return {}
    trained = [p.detach().double().sum() for p in model.parameters() if p.requires_grad]
    checksum = torch.stack(trained).sum().reshape(1).to(next(model.parameters()).device)
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    values = [float(g) for g in gathered]
    agree = max(values) - min(values) <= 1e-9 * max(1.0, abs(values[0]))
    log.info(f"rank {dist.get_rank()}: trained-weight checksums of all ranks {values}: "
             f"{'equal' if agree else 'DIFFERENT'} ({dist.get_backend()})")
    return {"backend": dist.get_backend(), "ranks_agree": agree, "rank_checksums": values}


def hold_out(records: list, size: int, seed: int, model_name: str = "") -> tuple:
    """(training records, validation records): `size` records of the training split, drawn with `seed`, held out
    of training for the validation loss; the rest train, in their order. The test split is never touched.

    Every adapter of a study draws the same records (the seed is the study's), so their validation curves are
    comparable.
    """
    import random

    if not size:
        return records, []
    if size >= len(records):
        raise TrainingSetupError(
            f"model {model_name!r}: training.validation_size {size} leaves no training record of the {len(records)} "
            f"in train.jsonl; lower it well below {len(records)} (a few percent is usual) or set 0")
    held = set(random.Random(seed).sample(range(len(records)), size))
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def validation_summary(history, records: int) -> dict:
    """The validation loss: records held out, every evaluation's loss, the last and the lowest with its step."""
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    if not records:
        return {"records": 0}
    best = min(evals, key=lambda e: e[1]) if evals else (None, None)
    return {"records": records, "evaluations": len(evals), "last_loss": evals[-1][1] if evals else None,
            "best_loss": best[1], "best_step": best[0]}


class CostMeter:
    """What one adapter cost: trainable parameters, training seconds (GPU-seconds on CUDA: seconds x the
    training processes), the job's peak GPU memory (this process; CUDA only) and the adapter's size on disk."""

    def __init__(self, device: str):
        import torch

        self.device, self.seconds, self.peak = device, None, None
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def timed(self, train):
        import time

        start = time.perf_counter()
        result = train()
        self.seconds = time.perf_counter() - start
        return result

    def restore(self, finished: dict) -> None:
        """A finished run's weights loaded, not trained: its cost as the run that trained them measured it."""
        self.seconds, self.peak = finished.get("train_seconds"), finished.get("peak_gpu_memory_mb")

    def record(self, model, processes: int, adapter_dir) -> dict:
        from pathlib import Path

        import torch

        trainable, total = model.get_nb_trainable_parameters()
        peak = self.peak or (torch.cuda.max_memory_allocated() / 2**20 if self.device == "cuda" else None)
        weights = sum(p.stat().st_size for p in Path(adapter_dir).glob("adapter_model.*"))
        return {
            "trainable_parameters": int(trainable), "total_parameters": int(total), "device": self.device,
            "processes": processes,
            # A resumed run: the resumed part only. None: loaded weights whose training time was not recorded.
            "train_seconds": self.seconds,
            "gpu_seconds": self.seconds * processes if self.seconds is not None and self.device == "cuda" else None,
            "peak_gpu_memory_mb": peak, "adapter_bytes": weights,
        }


def write_loss_log(history, path) -> None:
    """One row per logged step: step, epoch, training loss, learning rate, and the validation loss where one was
    measured at that step (empty without a validation split)."""
    import csv

    rows = {}
    for entry in history:
        if "loss" in entry or "eval_loss" in entry:
            row = rows.setdefault(entry["step"], {"step": entry["step"], "epoch": entry.get("epoch")})
            if "loss" in entry:
                row.update(loss=entry["loss"], learning_rate=entry.get("learning_rate"))
            if "eval_loss" in entry:
                row["eval_loss"] = entry["eval_loss"]
    columns = ["step", "epoch", "loss", "learning_rate", "eval_loss"]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for step in sorted(rows):
                writer.writerow([rows[step].get(c) for c in columns])

"""Fine-tune one LoRA adapter with TRL's SFTTrainer, resumably.

Training runs on prompt/completion pairs in the model's prompt format (lmsweep.prompts: the Alpaca
template, or the tokenizer's chat template as TRL's conversational format), so the loss covers the
answer only.
Checkpoints go to a folder keyed by the run's identity (run_identity):
everything that shapes the adapter, read by the job itself: the training
records' content, the base model's content (a fingerprint of its folder, or
the Hub commit it loaded, which covers its tokenizer), the lmsweep code the
step runs, the libraries' versions, every setting and the number of training
processes. An interrupted run of the same identity resumes from them; a
change of any of these starts afresh (other identities' folders are removed:
issue 18, a changed split or prompt template once wrote the old adapter
again). A finished run marks its folder (FINISHED): a rerun Snakemake asked
for (`--forcerun finetune`, `--forceall`: `retrain`) trains from scratch; one
it did not ask for (the adapter of a run that finished after Snakemake itself
was killed, which it calls incomplete) has the same identity and loads the
finished weights instead of training the same adapter twice.
"""

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from lmsweep.io import atomic_path, read_jsonl, write_json
from lmsweep.prompts import Prompter
from lmsweep.records import TrainingInfo
from lmsweep.reproducibility import library_versions, seed_everything
from lmsweep.settings import as_mapping
from lmsweep.trainlog import (  # noqa: F401  (the loss log, lengths and cost live in lmsweep.trainlog)
    CostMeter, TrainingSetupError, check_lengths, hold_out, length_report, logged_loss, ranks_agree, validation_summary,
    write_loss_log,
)

log = logging.getLogger(__name__)


# Written into a run's checkpoint folder once its adapter is saved.
FINISHED = "finished.json"
# The libraries whose versions shape an adapter (a checkpoint of another version may not even load).
TRAINING_LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets", "tokenizers")


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def base_identity(base_model: str, model) -> dict:
    """What the base weights and tokenizer are, as this job found them: a folder's fingerprint (its small
    files by content: config, tokenizer; its weights by size and time), or the Hub commit it loaded."""
    from lmsweep.modelsource import folder_fingerprint, is_local_folder

    if is_local_folder(base_model):
        return {"folder_fingerprint": folder_fingerprint(base_model)}
    return {"hub": base_model, "commit": getattr(model.config, "_commit_hash", None)}


def run_identity(train_path, base: dict, settings: dict) -> dict:
    """Everything that shapes the adapter; its hash names the checkpoint folder."""
    from lmsweep.codedigest import rule_code
    from lmsweep.io import sha256_file

    scripts = Path(__file__).resolve().parents[1]
    return {
        "train_sha256": sha256_file(train_path),
        "base": base,
        "code": rule_code("finetune", scripts),
        "versions": {k: v for k, v in library_versions(TRAINING_LIBRARIES).items() if k != "python"},
        **settings,
    }


def checkpoint_dir(root: Path, identity: dict) -> Path:
    """The checkpoint folder of this run's identity; folders of other identities are removed."""
    key = settings_key(identity)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.is_dir() and old.name != key:
            log.info(f"removing checkpoints of another training run (its data, model, code or settings differ): {old}")
            shutil.rmtree(old, ignore_errors=True)  # several training processes may clean at once
    folder = root / key
    folder.mkdir(exist_ok=True)
    (folder / "identity.json").write_text(json.dumps(identity, indent=2, sort_keys=True))
    return folder


def last_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint the Trainer finished writing, or None.

    The Trainer writes a checkpoint's trainer_state.json last: a folder without a
    readable one was cut off mid-save (a kill) and is passed over, not resumed from.
    """
    steps = {}
    for path in Path(folder).glob("checkpoint-*"):
        if not path.name.removeprefix("checkpoint-").isdigit():
            continue
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            log.info(f"skipping incomplete checkpoint {path} (no readable trainer_state.json)")
            continue
        steps[int(path.name.removeprefix("checkpoint-"))] = path
    return str(steps[max(steps)]) if steps else None


def uses_bitsandbytes(optim: str) -> bool:
    """Whether a transformers optimizer name is one of bitsandbytes' (8-bit, paged, bnb)."""
    return any(part in optim for part in ("8bit", "paged", "bnb"))


def sft_dataset(records, prompter):
    """Records (a list, or a JSONL path) in TRL's prompt-completion format, conversational under a chat template."""
    from datasets import Dataset

    records = read_jsonl(records) if isinstance(records, (str, os.PathLike)) else records
    return Dataset.from_list([prompter.sft_example(r) for r in records])


def train_adapter(
    train_path,
    base_model: str,
    adapter_dir,
    log_path,
    checkpoints_root,
    model_name: str,
    lora,
    training,
    load,
    seed: int,
    device: str = "auto",
    threads: int = 1,
    callbacks=None,
    retrain: bool = False,
    prompt_format: str = "alpaca",
    adaptation: str | None = None,
):
    """Train, save the adapter to `adapter_dir` (PEFT format) and the loss log to `log_path`; return its
    TrainingInfo.

    `lora`, `training`, `load` are lmsweep.settings' Lora, Training and Load: the
    revision loaded is the snapshot commit resolved when the run started where
    there is one, and `load.source` (lmsweep.modelsource) is recorded.
    `retrain`: a finished run of the same identity is trained again from scratch (the run was forced).
    `prompt_format`: alpaca or chat_template (lmsweep.prompts), part of the run's identity.
    `adaptation`: the adaptation config's name (lmsweep.adaptation), None for the baseline adapter.
    `training.validation_size` records of the training split are held out (lmsweep.trainlog.hold_out) and their
    loss is measured every `logging_steps` steps and at the end.
    """
    from lmsweep.models import skip_bitsandbytes

    import torch

    quantization, revision, trust_remote_code = load.quantization, load.revision_to_load, load.trust_remote_code
    # bitsandbytes stays out unless a 4-bit model or a bitsandbytes optimizer (8-bit, paged) needs it.
    on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    skip_bitsandbytes(quantization.load_in_4bit or (on_gpu and uses_bitsandbytes(training.optim)))
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    torch.set_num_threads(threads)
    seed_everything(seed)
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from lmsweep.models import check_lora_modules, load_base_model, load_tokenizer, lora_targets, resolve_device

    device = resolve_device(device)
    cost = CostMeter(device)
    # Settle the LoRA targets from the config alone: an unknown architecture
    # fails here, before gigabytes of weights are loaded.
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(base_model, revision=revision, trust_remote_code=trust_remote_code).model_type
    targets = lora_targets(model_type, lora.target_modules, model_name)
    tokenizer = load_tokenizer(base_model, revision=revision, trust_remote_code=trust_remote_code)
    prompter = Prompter(prompt_format, tokenizer, model_name)  # a chat template the tokenizer lacks: refused here
    # Every record in the model's format, before the weights load: a conversation of several turns has no
    # alpaca form, and is refused here (lmsweep.prompts).
    records, held_out = hold_out(read_jsonl(train_path), training.validation_size, seed, model_name)
    lengths = length_report(prompter, records, training.max_length)
    check_lengths(lengths, model_name)
    model = load_base_model(
        base_model, device, revision=revision, trust_remote_code=trust_remote_code,
        quantization=quantization, name=model_name,
    )
    # A module to save that the model lacks would train nothing, silently: refuse it before training.
    check_lora_modules(model, targets if isinstance(lora.target_modules, str) else lora.target_modules,
                       lora.modules_to_save, model_name)
    if quantization.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=training.gradient_checkpointing)
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        modules_to_save=lora.modules_to_save or None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    # The number of training processes sets the effective batch, so it is part of what identifies a run.
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    settings = {
        "base_model": base_model, "revision": revision, "trust_remote_code": trust_remote_code,
        "model_source": load.source, "prompt_format": prompt_format,
        "lora": as_mapping(lora), "training": as_mapping(training),
        "quantization": as_mapping(quantization), "seed": seed, "device": device, "processes": processes,
    }
    identity = run_identity(train_path, base_identity(base_model, model), settings)
    ckpt = checkpoint_dir(Path(checkpoints_root), identity)
    on_gpu = device == "cuda"
    args = SFTConfig(
        output_dir=str(ckpt),
        seed=seed,
        data_seed=seed,
        num_train_epochs=training.epochs,
        max_steps=training.max_steps,
        per_device_train_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        learning_rate=training.learning_rate,
        lr_scheduler_type=training.lr_scheduler,
        warmup_steps=training.warmup,
        weight_decay=training.weight_decay,
        optim=training.optim if on_gpu else "adamw_torch",
        max_length=training.max_length,
        completion_only_loss=True,
        # TRL turns bf16 and activation checkpointing on by default, even on CPU.
        bf16=on_gpu,
        fp16=False,
        gradient_checkpointing=on_gpu and training.gradient_checkpointing,
        use_cpu=not on_gpu,
        logging_steps=training.logging_steps,
        # The validation loss at every logged step (and at the end, below), on the held-out records.
        eval_strategy="steps" if held_out else "no",
        eval_steps=training.logging_steps if held_out else None,
        per_device_eval_batch_size=training.batch_size,
        save_strategy="steps",
        save_steps=training.save_steps,
        save_total_limit=2,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=sft_dataset(records, prompter),
        eval_dataset=sft_dataset(held_out, prompter) if held_out else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    if training.padding_free:
        # TRL tokenizes and truncates as always; its own collator then joins each batch into one
        # row, positions restarting at every example, with no padding to compute on. Without an
        # attention mask transformers reads the example boundaries from the positions (a
        # block-diagonal causal mask), so each example attends to itself only, as when padded.
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        trainer.data_collator = DataCollatorForLanguageModeling(
            pad_token_id=tokenizer.pad_token_id, padding_free=True,
        )
    if retrain and (ckpt / FINISHED).exists():
        log.info(f"training was asked for again (--forcerun or --forceall): the finished run's checkpoints in "
                 f"{ckpt} are removed")
        for old in ckpt.glob("checkpoint-*"):
            shutil.rmtree(old, ignore_errors=True)
        (ckpt / FINISHED).unlink(missing_ok=True)
    last = last_checkpoint(ckpt)
    state = json.loads((Path(last) / "trainer_state.json").read_text()) if last else None
    if state and state["global_step"] >= state["max_steps"]:
        # The run had finished (killed before the adapter was written, or rerun).
        # Resuming would take one optimizer step past max_steps when that ends
        # mid-epoch (the Trainer steps before it checks), so load the weights instead.
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        log.info(f"checkpoint {last} is the last step of this run: loading it, nothing left to train")
        if (ckpt / FINISHED).exists():
            cost.restore(json.loads((ckpt / FINISHED).read_text()).get("cost", {}))
        set_peft_model_state_dict(trainer.model, load_file(Path(last) / "adapter_model.safetensors"))
        history, global_step = state["log_history"], state["global_step"]
    else:
        log.info(f"resuming from checkpoint {last}" if last else f"training from scratch (checkpoints in {ckpt})")
        try:
            cost.timed(lambda: trainer.train(resume_from_checkpoint=last))
        except (RuntimeError, ValueError, KeyError) as err:
            if not last:
                raise
            raise TrainingSetupError(
                f"model {model_name!r}: resuming from {last} failed ({type(err).__name__}: {err}); it does not "
                f"fit this run. Delete {ckpt} to train from scratch"
            ) from err
        history, global_step = trainer.state.log_history, trainer.state.global_step
    history = list(history)
    if held_out and not any(e.get("step") == global_step and "eval_loss" in e for e in history):
        # The final weights' validation loss, unless the last logged step measured it already.
        history.append({"step": global_step, "eval_loss": trainer.evaluate()["eval_loss"]})
    write_loss_log(history, log_path)
    info = TrainingInfo(
        model=model_name,
        adaptation=adaptation,
        resumed_from=Path(last).name if last else None,
        global_step=global_step,
        train_loss=logged_loss(history),
        processes=processes,
        ranks=ranks_agree(trainer.model),
        effective_batch_size=training.batch_size * training.gradient_accumulation_steps * processes,
        lengths=lengths,
        validation=validation_summary(history, len(held_out)),
        settings=settings,
        identity={"key": ckpt.name, "train_sha256": identity["train_sha256"], "base": identity["base"],
                  "code": identity["code"]},
        target_modules=sorted(peft_config.target_modules),
        versions=library_versions(),
    )
    with atomic_path(adapter_dir, is_dir=True) as tmp:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = dataclasses.replace(info, cost=cost.record(trainer.model, processes, tmp))
        info.save(tmp / "training_info.json")
    if int(os.environ.get("RANK", "0")) == 0:
        write_json(ckpt / FINISHED, {"global_step": global_step, "adapter": str(adapter_dir),
                                     "cost": {k: info.cost[k] for k in ("train_seconds", "peak_gpu_memory_mb")}})
    return info

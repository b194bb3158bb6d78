"""Prompt formats and conversation data: token for token as TRL trains on them, the same split and prompts
whatever form the data holds them in, and every bad record or model named before a job."""

import json

import pytest

from lmsweep import data
from lmsweep.prompts import Prompter, PromptFormatError, prompt_messages

# SmolLM2-Instruct's template (ChatML with a default system turn), set on the tiny Llama's tokenizer.
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CONVERSATIONS = [
    {"id": 1, "messages": [{"role": "user", "content": "Name a colour."}], "output": "Red."},
    {"id": 2, "messages": [{"role": "system", "content": "Answer in one word."},
                           {"role": "user", "content": "Capital of France?"}], "output": "Paris"},
    {"id": 3, "messages": [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5"},
                           {"role": "user", "content": "And times 4?"}], "output": "20, since 5 x 4 = 20."},
]


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_llama):
    from lmsweep.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_llama))
    tokenizer.chat_template = CHATML
    return tokenizer


@pytest.fixture(scope="module")
def trl_rows(tiny_llama, tmp_path_factory):
    """rows(tokenizer, examples): the input_ids and labels TRL's SFTTrainer makes of them (the loss mask: -100
    where no loss is taken)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from lmsweep.models import load_for_inference

    model = load_for_inference(str(tiny_llama), None, "cpu")

    def rows(tokenizer, examples):
        args = SFTConfig(output_dir=str(tmp_path_factory.mktemp("trl")), completion_only_loss=True, max_length=None,
                         use_cpu=True, bf16=False, report_to="none", dataset_num_proc=None)
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                             processing_class=tokenizer)
        return [(list(r["input_ids"]), list(r["labels"])) for r in trainer.train_dataset]

    return rows


def alpaca_records(demo_records):
    with_input = [r for r in demo_records if r["input"].strip()][:3]
    without = [r for r in demo_records if not r["input"].strip()][:2]
    return with_input + without


@pytest.mark.parametrize("prompt_format", ["chat_template", "alpaca"])
def test_prompts_and_loss_masks_are_the_tokens_trl_trains_on(prompt_format, chat_tokenizer, trl_rows, demo_records):
    """TRL's own formatting of the same records (its SFTTrainer's dataset): the same ids, the same mask; the
    prompt a generation starts from is the trained prompt, and scoring reads the trained answer."""
    records = alpaca_records(demo_records) + (CONVERSATIONS if prompt_format == "chat_template" else CONVERSATIONS[:1])
    prompter = Prompter(prompt_format, chat_tokenizer, "tiny")
    theirs = trl_rows(chat_tokenizer, [prompter.sft_example(r) for r in records])
    assert len(theirs) == len(records)
    for record, (ids, labels) in zip(records, theirs):
        scored = prompter.scored(record)
        assert scored.ids == ids, record["id"]
        assert labels == [-100] * scored.n_prompt + ids[scored.n_prompt :]
        assert prompter.prompt_ids(record) == ids[: scored.n_prompt]
        assert chat_tokenizer.decode(ids[scored.n_prompt : scored.n_own]) == record["output"]


def test_the_answers_own_tokens_stop_before_the_end_of_turn(chat_tokenizer):
    """Bits per byte counts the answer's own tokens: the template's closing markup is no byte of it."""
    prompter = Prompter("chat_template", chat_tokenizer, "tiny")
    for record in CONVERSATIONS:
        scored = prompter.scored(record)
        assert chat_tokenizer.decode(scored.ids[scored.n_own :]) == "<|im_end|>\n"
        assert scored.text[scored.start : scored.end] == record["output"]


def test_the_prompt_text_is_the_templates_generation_prompt(chat_tokenizer):
    prompter = Prompter("chat_template", chat_tokenizer, "tiny")
    text = prompter.text(CONVERSATIONS[2])
    assert text.endswith("<|im_start|>user\nAnd times 4?<|im_end|>\n<|im_start|>assistant\n")
    assert "<|im_start|>assistant\n5<|im_end|>" in text  # earlier turns stay in the prompt
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant")


def test_a_chat_template_the_tokenizer_lacks_is_refused_by_name(tiny_llama):
    from lmsweep.models import load_tokenizer

    with pytest.raises(PromptFormatError, match="model tiny: prompt_format is chat_template, but its tokenizer "
                                                "has no chat template; set models.tiny.prompt_format: alpaca"):
        Prompter("chat_template", load_tokenizer(str(tiny_llama)), "tiny")


def test_a_conversation_of_several_turns_has_no_alpaca_form(chat_tokenizer):
    prompter = Prompter("alpaca", chat_tokenizer, "tiny")
    assert prompter.text(CONVERSATIONS[0]).endswith("### Instruction:\nName a colour.\n\n### Response:\n")
    with pytest.raises(PromptFormatError, match="record 3 is a conversation of 3 turns .*prompt_format: chat_template"):
        prompter.text(CONVERSATIONS[2])


# --- conversation data -------------------------------------------------------------------------------------

def as_messages(record):
    return {"messages": prompt_messages(record) + [{"role": "assistant", "content": record["output"]}]}


def as_sharegpt(record):
    names = {"user": "human", "assistant": "gpt", "system": "system"}
    return {"conversations": [{"from": names[t["role"]], "value": t["content"]} for t in as_messages(record)["messages"]]}


@pytest.mark.parametrize("form", [as_messages, as_sharegpt])
def test_the_same_content_in_messages_form_gives_the_same_split_and_prompts(form, demo_records, chat_tokenizer):
    raw = [{k: r[k] for k in ("instruction", "input", "output")} for r in demo_records] * 2  # duplicates too
    alpaca, alpaca_report = data.validate(raw)
    conversations, report = data.validate([form(r) for r in raw])
    assert report["form"] == ("messages" if form is as_messages else "sharegpt") and alpaca_report["form"] == "alpaca"
    assert report["dropped"] == alpaca_report["dropped"]
    assert report["dropped"]["duplicate"] >= len(demo_records)
    train_a, test_a = data.split(alpaca, test_size=12, seed=3)
    train_m, test_m = data.split(conversations, test_size=12, seed=3)
    assert [r["id"] for r in test_m] == [r["id"] for r in test_a]
    assert [r["id"] for r in train_m] == [r["id"] for r in train_a]
    prompter = Prompter("chat_template", chat_tokenizer, "tiny")
    assert [prompter.text(r) for r in test_m] == [prompter.text(r) for r in test_a]
    assert [prompter.scored(r).ids for r in test_m] == [prompter.scored(r).ids for r in test_a]
    assert [r["output"] for r in test_m] == [r["output"] for r in test_a]
    assert data.overlap(train_m, test_m) == data.overlap(train_a, test_a) == 0


def test_overlap_is_counted_for_conversations():
    records, _ = data.validate([as_messages(r) for r in CONVERSATIONS] * 2, duplicates="keep")
    assert data.overlap(records[:3], records[3:]) == 3


GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


@pytest.mark.parametrize("records, message", [
    ([GOOD, {"messages": [{"role": "user", "content": "Hi"}]}],
     "record 2 messages does not end with an assistant turn (the reference answer): it ends with user"),
    ([GOOD, {"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Yo"}]}],
     "record 2 messages turn 2 has the unknown role 'bot' (known: system, user, assistant)"),
    ([GOOD, {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "Yo"}]}],
     "record 2 messages turn 1 (user) is empty"),
    ([GOOD, {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]}],
     "record 2 messages turn 2 (assistant) is empty"),
    ([GOOD, {"messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Be short"},
                          {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}],
     "record 2 messages has a system turn after its first turn"),
    ([GOOD, {"messages": [{"role": "assistant", "content": "Hi"}]}],
     "record 2 messages has no user turn right before its last assistant turn"),
    ([GOOD, {"messages": []}], "record 2 field messages is an empty list, not a list of turns"),
    ([GOOD, {"messages": [{"role": "user", "text": "Hi"}]}],
     "record 2 messages turn 1 is not an object with 'role' and 'content'"),
    ([GOOD, {"instruction": "x", "input": "", "output": "y"}],
     "record 2 is in alpaca form, but record 1 is in messages form; give every record in one form"),
    ([{"conversations": [{"from": "human", "value": "Hi"}, {"from": "robot", "value": "Yo"}]}],
     "record 1 conversations turn 2 has the unknown from 'robot' (known: system, human, user, gpt, assistant)"),
])
def test_a_bad_conversation_record_is_named(records, message):
    with pytest.raises(data.DatasetError) as error:
        data.validate(records)
    assert message in str(error.value)


def test_bad_conversation_records_are_dropped_and_counted_when_asked():
    bad = {"messages": [{"role": "user", "content": "Hi"}]}
    kept, report = data.validate([GOOD, bad, GOOD | {"messages": GOOD["messages"][:1] + [
        {"role": "assistant", "content": "Other"}]}], on_invalid="drop", duplicates="keep")
    assert [r["id"] for r in kept] == [1, 3]
    assert kept[0] == {"id": 1, "messages": [{"role": "user", "content": "Hi"}], "output": "Hello"}
    assert sum(report["dropped"].values()) == 1


def test_a_local_messages_file_is_read_and_split_with_its_line_numbers(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(as_messages(r) | {"source": "x"}) for r in CONVERSATIONS) + "\n")
    records, report = data.validate(data.load_records(str(path)))
    assert report["form"] == "messages" and [r["id"] for r in records] == [1, 2, 3]
    assert records[2]["messages"][-1] == {"role": "user", "content": "And times 4?"}
    assert records[2]["output"] == CONVERSATIONS[2]["output"]


# --- the config check, before any job ----------------------------------------------------------------------

def test_a_chat_template_is_refused_for_a_built_model_and_a_folder_without_one(tmp_path, tiny_llama):
    import shutil

    import yaml

    from lmsweep.configcheck import config_problems
    from test_config_errors import DEMO, SCHEMA

    folder = tmp_path / "plain"
    shutil.copytree(tiny_llama, folder)
    with_template = tmp_path / "chat"
    shutil.copytree(tiny_llama, with_template)
    (with_template / "chat_template.jinja").write_text(CHATML)
    config = yaml.safe_load(yaml.safe_dump(DEMO))
    config["models"] = {
        "built": {"build": {"architecture": "llama"}, "prompt_format": "chat_template"},
        "plain": {"name_or_path": str(folder), "prompt_format": "chat_template"},
        "chat": {"name_or_path": str(with_template), "prompt_format": "chat_template"},
    }
    problems = config_problems(config, SCHEMA, [])
    assert problems == [
        "models.built.prompt_format: chat_template, but built is a tiny model the workflow builds, whose tokenizer "
        "has no chat template; use prompt_format: alpaca",
        f"models.plain.prompt_format: chat_template, but the tokenizer in {str(folder)!r} has no chat template "
        "(none in tokenizer_config.json, no chat_template.jinja); use prompt_format: alpaca, or a model folder whose "
        "tokenizer has one",
    ]


def test_a_parquet_file_of_conversations_reads_as_its_jsonl(tmp_path):
    import pandas as pd

    rows = [as_messages(r) for r in CONVERSATIONS]
    pd.DataFrame(rows).to_parquet(tmp_path / "chat.parquet")
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from_parquet, report = data.validate(data.load_records(str(tmp_path / "chat.parquet")))
    assert report["form"] == "messages"
    assert from_parquet == data.validate(data.load_records(str(tmp_path / "chat.jsonl")))[0]


def test_a_cached_hub_tokenizer_without_a_chat_template_is_refused_before_any_job(tmp_path):
    """With the tokenizer in the Hub cache (prefetch puts it there), the config check reads it; a model not
    cached yet is left to its first job, which refuses it before loading weights."""
    import yaml

    from lmsweep.configcheck import config_problems
    from steps.test_prefetch import cache_model
    from test_config_errors import DEMO, SCHEMA

    hub = tmp_path / "hf" / "hub"
    cache_model(hub, "acme/plain", {"config.json": "{}", "tokenizer_config.json": json.dumps({"eos_token": "</s>"})})
    cache_model(hub, "acme/chat", {"config.json": "{}", "tokenizer_config.json": json.dumps({"chat_template": CHATML})})
    cache_model(hub, "acme/jinja", {"config.json": "{}", "tokenizer_config.json": "{}", "chat_template.jinja": CHATML})
    config = yaml.safe_load(yaml.safe_dump(DEMO))
    config["hf_home"] = str(tmp_path / "hf")
    config["models"] = {name: {"name_or_path": f"acme/{name}", "prompt_format": "chat_template"}
                        for name in ("plain", "chat", "jinja", "uncached")}
    problems = [p for p in config_problems(config, SCHEMA, []) if "prompt_format" in p]
    assert len(problems) == 1 and problems[0].startswith(
        "models.plain.prompt_format: chat_template, but the tokenizer of acme/plain (cached in ")
    assert problems[0].endswith("has no chat template; use prompt_format: alpaca, or a model whose tokenizer has one")

"""The Alpaca prompt template: the one text every step (train, generate, perplexity) agrees on."""

import pytest

from lmsweep.prompts import format_prompt

WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nAdd the two numbers.\n\n"
    "### Input:\n3 and 4\n\n"
    "### Response:\n"
)
NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nName a colour.\n\n"
    "### Response:\n"
)


def test_with_input_is_the_alpaca_template():
    assert format_prompt({"instruction": "Add the two numbers.", "input": "3 and 4", "output": "7"}) == WITH_INPUT


def test_without_input_is_the_short_alpaca_template():
    assert format_prompt({"instruction": "Name a colour.", "input": "", "output": "red"}) == NO_INPUT


@pytest.mark.parametrize("blank", ["", "   ", "\n\t ", None])
def test_blank_or_missing_input_takes_the_no_input_form(blank):
    record = {"instruction": "Name a colour.", "output": "red"}
    if blank is not None:
        record["input"] = blank
    assert format_prompt(record) == NO_INPUT


def test_the_answer_is_not_part_of_the_prompt():
    prompt = format_prompt({"instruction": "Add the two numbers.", "input": "3 and 4", "output": "SECRET"})
    assert "SECRET" not in prompt
    assert prompt.endswith("### Response:\n")

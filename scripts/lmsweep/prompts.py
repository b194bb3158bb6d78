"""The Alpaca prompt template, the only one used to train, generate and score."""

WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that "
    "provides further context. Write a response that appropriately completes "
    "the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that "
    "appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def format_prompt(record: dict) -> str:
    """The prompt for one Alpaca record; an empty or blank `input` takes the short form."""
    if (record.get("input") or "").strip():
        return WITH_INPUT.format(instruction=record["instruction"], input=record["input"])
    return NO_INPUT.format(instruction=record["instruction"])

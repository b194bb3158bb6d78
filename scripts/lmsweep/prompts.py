"""How a record becomes what a model reads: its prompt format.

Two formats, chosen per model (`models.<name>.prompt_format`):

- `alpaca`: the Alpaca prompt template below, followed by the answer and
  the tokenizer's EOS, as text (TRL's prompt-completion format; the
  reference study's).
- `chat_template`: the tokenizer's own chat template, as TRL's
  conversational prompt-completion format uses it: the prompt is the
  conversation up to the answer rendered with the template's generation
  prompt, the completion the answer as an assistant turn, and the loss (and
  lmsweep's scoring) covers the tokens where prompt + completion part from
  the prompt alone.

A record is an Alpaca record (instruction, input, output) or a conversation
record (`messages`: the turns before the answer; `output`: the answer, the
last assistant turn of the source); lmsweep.data makes both. An Alpaca
record under a chat template is a one-turn conversation (`prompt_messages`).
"""

from dataclasses import dataclass

FORMATS = ("alpaca", "chat_template")

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


class PromptFormatError(ValueError):
    """A record or a tokenizer that the model's prompt format cannot take; the message names the fix."""


def format_prompt(record: dict) -> str:
    """The Alpaca prompt for one record; an empty or blank `input` takes the short form.

    A conversation record takes it where it is one user turn (its content is
    the instruction); a longer conversation has no Alpaca form.
    """
    if "messages" in record:
        turns = record["messages"]
        if len(turns) != 1 or turns[0]["role"] != "user":
            raise PromptFormatError(
                f"record {record.get('id')} is a conversation of {len(turns)} turns before its answer "
                f"({', '.join(t['role'] for t in turns)}); the alpaca prompt format takes one user turn: set "
                "models.<name>.prompt_format: chat_template for a model with a chat template"
            )
        return NO_INPUT.format(instruction=turns[0]["content"])
    if (record.get("input") or "").strip():
        return WITH_INPUT.format(instruction=record["instruction"], input=record["input"])
    return NO_INPUT.format(instruction=record["instruction"])


def prompt_messages(record: dict) -> list:
    """The turns before the answer: a conversation record's own, or an Alpaca record as one user turn
    (the instruction, then a blank line and the input where there is one)."""
    if "messages" in record:
        return [dict(turn) for turn in record["messages"]]
    content = record["instruction"]
    if (record.get("input") or "").strip():
        content = f"{content}\n\n{record['input']}"
    return [{"role": "user", "content": content}]


def answer_message(record: dict) -> list:
    return [{"role": "assistant", "content": record["output"]}]


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def check_chat_template(tokenizer, model: str) -> None:
    if not has_chat_template(tokenizer):
        raise PromptFormatError(
            f"model {model}: prompt_format is chat_template, but its tokenizer has no chat template; set "
            f"models.{model}.prompt_format: alpaca, or use a model whose tokenizer_config.json has one"
        )


def common_prefix_length(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class Prompter:
    """One model's prompt format with its tokenizer: prompt text, prompt ids, what TRL trains on, and
    the token ids scoring reads, all made the same way."""

    def __init__(self, prompt_format: str, tokenizer, model: str = ""):
        if prompt_format not in FORMATS:
            raise PromptFormatError(f"prompt_format {prompt_format!r}: use one of {', '.join(FORMATS)}")
        if prompt_format == "chat_template":
            check_chat_template(tokenizer, model)
        self.format = prompt_format
        self.tokenizer = tokenizer

    @property
    def chat(self) -> bool:
        return self.format == "chat_template"

    def _chat_ids(self, messages, generation_prompt: bool) -> list:
        # As TRL tokenizes a conversational example (trl.data_utils._tokenize): the template's own tokens only.
        out = self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                 add_generation_prompt=generation_prompt)
        return list(out["input_ids"])

    def text(self, record: dict) -> str:
        """The prompt as text, as recorded beside each prediction."""
        if self.chat:
            return self.tokenizer.apply_chat_template(prompt_messages(record), tokenize=False,
                                                      add_generation_prompt=True)
        return format_prompt(record)

    def prompt_ids(self, record: dict) -> list:
        """The prompt's token ids, as generation starts from them."""
        if self.chat:
            return self._chat_ids(prompt_messages(record), generation_prompt=True)
        return list(self.tokenizer(format_prompt(record))["input_ids"])

    def sft_example(self, record: dict) -> dict:
        """One training example in TRL's prompt-completion format (conversational under a chat template)."""
        if self.chat:
            return {"prompt": prompt_messages(record), "completion": answer_message(record)}
        return {"prompt": format_prompt(record), "completion": record["output"]}

    def scored(self, record: dict) -> "Scored":
        """Prompt + answer as TRL trains on them, with where the answer's own text lies (for scoring)."""
        tokenizer = self.tokenizer
        answer = record["output"]
        if self.chat:
            messages = prompt_messages(record)
            prompt_ids = self._chat_ids(messages, generation_prompt=True)
            ids = self._chat_ids(messages + answer_message(record), generation_prompt=False)
            text = tokenizer.apply_chat_template(messages + answer_message(record), tokenize=False)
            start = text.rfind(answer)  # the answer is the conversation's last turn
            if start < 0:
                raise PromptFormatError(
                    f"record {record.get('id')}: the chat template changes the answer's text when it renders it, "
                    "so the answer's own tokens cannot be told from the template's; use prompt_format: alpaca")
            # apply_chat_template(tokenize=True) tokenizes the rendered text without adding special tokens.
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=tokenizer.is_fast)
            offsets = enc.get("offset_mapping") if list(enc["input_ids"]) == ids else None
        else:
            prompt = format_prompt(record)
            prompt_ids = tokenizer(prompt)["input_ids"]
            text, start = prompt + answer, len(prompt)
            enc = tokenizer(text, return_offsets_mapping=tokenizer.is_fast)
            ids = list(enc["input_ids"]) + [tokenizer.eos_token_id]  # TRL ends a text completion with the EOS
            offsets = enc.get("offset_mapping")
            offsets = None if offsets is None else list(offsets) + [(len(text), len(text))]
        end = start + len(answer)
        n_prompt = common_prefix_length(prompt_ids, ids)
        if offsets is not None:  # the answer's own tokens end with the last one that covers text before its end
            n_own = max([n_prompt] + [i + 1 for i, (a, b) in enumerate(offsets) if b > a and a < end])
        else:
            n_own = len(ids) - 1 if not self.chat else _own_by_decoding(tokenizer, ids, n_prompt, text[:end])
        return Scored(ids, n_prompt, n_own, text, [tuple(o) for o in offsets] if offsets is not None else None,
                      start, end)


@dataclass(frozen=True)
class Scored:
    """ids[:n_prompt] the prompt; ids[n_prompt:n_own] the answer's own tokens; ids[n_own:] what closes it
    (alpaca: the EOS; a chat template: its end-of-turn markup). text[start:end] is the answer, offsets
    each id's characters in text (None where the tokenizer gives none)."""

    ids: list
    n_prompt: int
    n_own: int
    text: str
    offsets: list | None
    start: int
    end: int


def _own_by_decoding(tokenizer, ids, n_prompt, through_answer: str) -> int:
    """Without offsets: the fewest ids that decode to at least the text through the answer."""
    for n in range(n_prompt, len(ids) + 1):
        if len(tokenizer.decode(ids[:n])) >= len(through_answer):
            return n
    return len(ids)

"""How well a model predicts the reference answers given their prompts, answer tokens only.

The answer is tokenized exactly as TRL tokenized it for training, in the
model's prompt format (lmsweep.prompts): the prompt, then prompt + answer +
EOS (alpaca) or the conversation rendered by the chat template with the
answer as its last assistant turn (chat_template), the answer starting where
the two token sequences part. What closes the answer (the EOS; a template's
end-of-turn tokens) is its closing. Each example's negative log-likelihood
(NLL, in nats) is summed twice:

- over the answer's tokens and its closing (`nll`, `tokens`): token
  perplexity, exp(total NLL / total tokens), the number training minimises.
  It counts in the model's own tokens, so it compares the two variants of
  one model (same tokenizer), not models with different tokenizers (Llama-2's
  32,000 tokens against Phi-2's 51,200);
- over the answer's own tokens, without the closing (`nll_text`): bits per byte,
  total NLL / (total UTF-8 bytes * ln 2), and word perplexity,
  exp(total NLL / total words). Both count in units of the text itself, so
  they compare models, and both are lm-evaluation-harness's: the log-likelihood
  of the document's own tokens over its bytes or words (words are
  `re.split(r"\\s+", text)`, its count_words). The EOS or end-of-turn markup
  is no byte and no word of the answer, so its loss is left out of both
  (issue 17: counting it added 1-4% to bits per byte and reordered models).

All are corpus numbers (totals first, then the ratio; never a mean of
per-example values). An answer longer than the model's context loses its
end: only what was scored counts, its NLL and the bytes and words of the
scored text (`bytes_cut` and `answer_tokens_cut` say what was left out).
"""

import math
import re
from dataclasses import dataclass



@dataclass(frozen=True)
class Encoded:
    """One record as the model reads it: ids[:n_prompt] the prompt, ids[n_prompt:n_own] the answer's own
    tokens, ids[n_own:] what closes it (the EOS, or a chat template's end-of-turn tokens)."""

    ids: list
    n_prompt: int
    n_own: int
    prompt_tokens_cut: int  # prompt tokens dropped from its start to fit the context
    answer_tokens_cut: int  # answer tokens (closing tokens included) dropped from its end: too long on its own
    scored_text: str  # the part of the answer whose tokens are scored: the whole answer unless it was cut

    @property
    def cut(self) -> int:
        return self.prompt_tokens_cut + self.answer_tokens_cut


def encode(prompter, record, max_tokens: int | None = None) -> Encoded:
    """How one record is scored (lmsweep.prompts.Prompter.scored), cut to `max_tokens` (the model's
    context) where it does not fit.

    Where prompt and answer exceed `max_tokens`, the prompt loses tokens from
    its start (after BOS, keeping at least one) until the whole fits; an answer
    longer than the context on its own then loses its end, closing tokens first.
    """
    tokenizer = prompter.tokenizer
    scored = prompter.scored(record)
    full, n_prompt = list(scored.ids), scored.n_prompt
    if n_prompt == 0:
        raise ValueError(f"record {record.get('id')}: the prompt and the prompt + answer tokenize with no common "
                         "first token, so the answer's first token has nothing to be predicted from")
    closing = len(full) - scored.n_own
    prompt_cut = answer_cut = 0
    if max_tokens is not None and len(full) > max_tokens:
        keep = 1 if tokenizer.bos_token_id is not None and full[0] == tokenizer.bos_token_id else 0
        prompt_cut = min(len(full) - max_tokens, max(0, n_prompt - keep - 1))
        full = full[:keep] + full[keep + prompt_cut :]
        n_prompt -= prompt_cut
        answer_cut = max(0, len(full) - max_tokens)
        full = full[:max_tokens]
    n_own = min(scored.n_own - prompt_cut, len(full))
    scored_text = record["output"]
    if answer_cut > closing:  # more than the closing tokens: the text's tail is not scored
        if scored.offsets is not None:
            end = scored.offsets[n_own - 1 + prompt_cut][1]  # the last kept token, as an index into scored.ids
            scored_text = scored.text[scored.start : min(max(end, scored.start), scored.end)]
        else:
            scored_text = tokenizer.decode(full[n_prompt:n_own], skip_special_tokens=True)
    return Encoded(full, n_prompt, n_own, prompt_cut, answer_cut, scored_text)


def count_bytes(text: str) -> int:
    """lm-evaluation-harness's count_bytes."""
    return len(text.encode("utf-8"))


def count_words(text: str) -> int:
    """lm-evaluation-harness's count_words."""
    return len(re.split(r"\s+", text))


@dataclass(frozen=True)
class AnswerNLL:
    """One example's scores: NLL with and without the EOS, and the units of the scored text."""

    nll: float  # answer tokens and EOS, nats
    tokens: int
    nll_text: float  # the answer's own tokens, nats
    bytes: int
    words: int
    prompt_tokens_cut: int
    answer_tokens_cut: int
    bytes_cut: int


def answer_nll(model, prompter, records, batch_size: int = 8, max_tokens: int | None = None) -> list:
    """An AnswerNLL per record, in record order, under the model's prompt format (a
    lmsweep.prompts.Prompter); the batch is halved on out-of-memory."""
    import torch

    from lmsweep.batching import run_batches

    device = next(model.parameters()).device
    pad = prompter.tokenizer.pad_token_id
    encoded = [encode(prompter, r, max_tokens) for r in records]

    def batch_nll(batch):
        out = []
        width = max(len(encoded[i].ids) for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, -100)
        for row, i in enumerate(batch):
            ids, n_prompt = encoded[i].ids, encoded[i].n_prompt
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        logits = logits[:, :-1].float()
        targets = labels[:, 1:].to(device)
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="none"
        ).view(targets.shape)
        for row, i in enumerate(batch):
            e = encoded[i]
            # Target position j - 1 predicts token j: the answer's tokens are n_prompt - 1 .. len(ids) - 2.
            answer = nll[row, e.n_prompt - 1 : len(e.ids) - 1].double()
            text = nll[row, e.n_prompt - 1 : e.n_own - 1].double()
            record = records[i]
            out.append(AnswerNLL(
                nll=answer.sum().item(), tokens=len(answer), nll_text=text.sum().item(),
                bytes=count_bytes(e.scored_text), words=count_words(e.scored_text),
                prompt_tokens_cut=e.prompt_tokens_cut, answer_tokens_cut=e.answer_tokens_cut,
                bytes_cut=count_bytes(record["output"]) - count_bytes(e.scored_text),
            ))
        return out

    # Longest first (less padding per batch, an out-of-memory at once), results back in record order.
    order = sorted(range(len(records)), key=lambda i: (-len(encoded[i].ids), i))
    scored = run_batches(order, batch_size, batch_nll, describe=lambda i: f"test record {records[i]['id']}")
    out = [None] * len(records)
    for i, result in zip(order, scored):
        out[i] = result
    return out


# What each number counts, recorded beside it.
SIGNATURES = {
    "perplexity": "exp(sum NLL / tokens)|answer tokens+eos|teacher-forced|model's own tokens",
    "bits_per_byte": "sum NLL / (UTF-8 bytes * ln 2)|answer tokens, no eos (lm-evaluation-harness)|teacher-forced"
                     "|scored text only",
    "word_perplexity": "exp(sum NLL / words)|answer tokens, no eos (lm-evaluation-harness)|words: re.split(r'\\s+')"
                       "|teacher-forced|scored text only",
}


def perplexity(nll, tokens) -> float:
    """Token perplexity: exp(total NLL / total tokens)."""
    return math.exp(sum(nll) / sum(tokens))


def bits_per_byte(nll_text, n_bytes) -> float:
    """Total NLL of the answers' own tokens, in bits, over their total bytes (lm-evaluation-harness's)."""
    return sum(nll_text) / sum(n_bytes) / math.log(2)


def word_perplexity(nll_text, words) -> float:
    """exp(total NLL of the answers' own tokens / their total words) (lm-evaluation-harness's)."""
    return math.exp(sum(nll_text) / sum(words))

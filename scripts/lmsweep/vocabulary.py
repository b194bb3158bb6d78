"""The study's one vocabulary of metrics: name, label, direction, kind and precision of each.

aggregate, compare, the report's sentences and tables, and the plots read
every metric's properties from here, so that a metric added here is labelled,
ranked and printed alike everywhere.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str  # the `metric` column of scores.csv and comparisons.csv
    label: str  # how the report names it
    higher_is_better: bool
    kind: str  # "text": scored on generated answers; "perplexity": teacher forced; "hygiene": a share of answers
    form: str  # how a value is printed: "bleu" (0-100, 1 decimal), "score" (3 decimals), "perplexity", "share" (%)
    across_models: bool = True  # comparable between models with different tokenizers
    meaning: str = ""


_ALL = (
    Metric("bleu", "BLEU", True, "text", "bleu", meaning="corpus BLEU (sacreBLEU) of all replicates' answers"),
    Metric("rouge_l", "ROUGE-L", True, "text", "score", meaning="mean ROUGE-L F1 (rouge-score)"),
    Metric("bertscore_f1", "BERTScore F1", True, "text", "score", meaning="mean BERTScore F1 (bert-score)"),
    Metric("perplexity", "token perplexity", False, "perplexity", "perplexity", across_models=False,
           meaning="exp(NLL per answer token, EOS included), in the model's own tokens"),
    Metric("bits_per_byte", "bits per byte", False, "perplexity", "score",
           meaning="NLL of the reference answers' own tokens in bits per UTF-8 byte"),
    Metric("word_perplexity", "word perplexity", False, "perplexity", "perplexity",
           meaning="exp(NLL of the answers' own tokens per whitespace word)"),
    Metric("empty", "empty answers", False, "hygiene", "share",
           meaning="share of answers that are empty or whitespace"),
    Metric("hit_max_new_tokens", "cut at max_new_tokens", False, "hygiene", "share",
           meaning="share of answers cut at max_new_tokens before their end"),
    Metric("repeated_3gram_rate", "repeated 3-grams", False, "hygiene", "share",
           meaning="mean share of an answer's word 3-grams repeating an earlier one"),
)
METRICS = {m.name: m for m in _ALL}
TEXT = tuple(m.name for m in _ALL if m.kind == "text")
PERPLEXITY = tuple(m.name for m in _ALL if m.kind == "perplexity")
HYGIENE = tuple(m.name for m in _ALL if m.kind == "hygiene")
# Perplexities that compare models with different tokenizers; token perplexity compares variants of one model.
ACROSS_MODELS = tuple(m for m in PERPLEXITY if METRICS[m].across_models)
LABELS = {m.name: m.label for m in _ALL}
HIGHER_IS_BETTER = {m.name: m.higher_is_better for m in _ALL}
# The label a perplexity row carries where a generation row names its decoding config.
TEACHER_FORCED = "teacher_forced"


def number(value, metric: str) -> str:
    """A metric value in its usual precision."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    form = METRICS[metric].form
    if form == "share":
        return f"{100 * value:.0f}%"
    if form == "bleu":
        return f"{value:.1f}"
    if form == "perplexity":
        return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"
    return f"{value:.3f}"


def signed(value, metric: str) -> str:
    text = number(abs(value), metric)
    return ("+" if value > 0 else "−" if value < 0 else "±") + text


def better(difference: float, metric: str) -> bool:
    """Whether B - A = `difference` means B is better."""
    return (difference > 0) == HIGHER_IS_BETTER[metric]

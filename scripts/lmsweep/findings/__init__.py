"""The study's answers, computed from scores.csv and comparisons.csv: sentences and flat tables.

Nothing here is written by hand: every sentence is made from the numbers, so
it changes when they do. Tables have flat, named columns (`BLEU`, not
`('bleu', 'tiny_llama')`) and cells that carry their interval. One module per
question the report answers:

    cells       a value with its interval, p-values, marks, lookups
    ranking     which model is best, and what Holm asks of a p-value
    gains       what fine-tuning bought
    sweeps      how each decoding parameter matters
    adaptations how each adaptation setting matters, and what each adapter cost
    agreement   whether the metrics agree
    answers     answer hygiene, cost against quality, examples
    cautions    what makes the numbers doubtful
    tables      where the numbers came from: runtime, training, decoding, weights
"""

from lmsweep.findings.adaptations import adaptation_sentences, adaptation_table, adapter_cost_table, by_parameter
from lmsweep.findings.agreement import agreement_table, disagreements
from lmsweep.findings.answers import best_config, cost_table, example_pairs, hygiene_table
from lmsweep.findings.cautions import study_warnings
from lmsweep.findings.cells import (
    baseline_decoding, comparison_of, difference_text, mark, p_text, row_of, value_text, with_interval,
)
from lmsweep.findings.gains import gain_sentences, gain_table, ratio_text
from lmsweep.findings.ranking import (
    best_model_sentences, holm_bar, holm_family_size, model_pair_table, model_ranking, model_table, order_text,
    ranks, rankings_agree,
)
from lmsweep.findings.sweeps import sweep_sentences, sweep_series, sweep_table
from lmsweep.findings.tables import (
    batch_dependence_note, decoding_table, examples_frame, overridden_notes, pooled_examples, runtime_summary,
    runtime_table, test_kind, training_table, weights_table,
)
from lmsweep.vocabulary import LABELS, number, signed

__all__ = [
    "LABELS", "adaptation_sentences", "adaptation_table", "adapter_cost_table", "agreement_table", "baseline_decoding",
    "batch_dependence_note", "best_config", "best_model_sentences", "by_parameter",
    "comparison_of", "cost_table", "decoding_table", "difference_text", "disagreements", "example_pairs",
    "examples_frame", "gain_sentences", "gain_table", "holm_bar", "holm_family_size", "hygiene_table", "mark",
    "model_pair_table", "model_ranking", "model_table", "number", "order_text", "overridden_notes", "p_text",
    "pooled_examples", "ranks", "rankings_agree", "ratio_text", "row_of", "runtime_summary", "runtime_table",
    "signed", "study_warnings", "sweep_sentences", "sweep_series", "sweep_table", "test_kind", "training_table",
    "value_text", "weights_table", "with_interval",
]

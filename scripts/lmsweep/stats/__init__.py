"""How sure are we: bootstrap intervals, paired tests, Holm, rank agreement, output hygiene.

Inputs are the per-example numbers the workflow keeps, aligned by test example
id: scores for the mean metrics (ROUGE-L, BERTScore, sentence BLEU), the raw
strings or sacreBLEU's statistics for corpus BLEU (which is not a mean of
sentence BLEU), summed NLL in nats with answer token counts (perplexity) or
reference UTF-8 byte counts (bits per byte). Every resampling function takes
`n_resamples` and `seed` and says in its result which method or test
produced the numbers. A paired result's difference is always B - A.

    base        the result types, input checks, scipy's bootstrap
    intervals   a run's number and its interval: means, perplexity, bits per byte
    bleu        corpus BLEU's interval and sacreBLEU's paired tests (public API)
    signflip    paired p-values no resampling bounds: exact sign-flip, t-test
    paired      A against B: means and perplexities
    family      Holm's correction, and Monte-Carlo p-values settled against it
    agreement   rank agreement of metrics, spread across seeds, answer hygiene
"""

from lmsweep.stats.agreement import (
    Correlation, Spread, is_empty, rank_correlation, repeated_ngram_rate, replicate_spread,
)
from lmsweep.stats.base import CONFIDENCE, SEED, Interval, Paired
from lmsweep.stats.bleu import (
    BLEU_TESTS, bleu_interval, bleu_interval_from_stats, bleu_score, bleu_statistics, paired_bleu,
    paired_bleu_from_stats,
)
from lmsweep.stats.family import holm, holm_levels, settle, unsettled
from lmsweep.stats.intervals import bits_per_byte_interval, mean_interval, perplexity_interval
from lmsweep.stats.paired import paired_bits_per_byte, paired_mean, paired_perplexity
from lmsweep.stats.signflip import exact_sign_flip_p, sign_flip_test

__all__ = [
    "BLEU_TESTS", "CONFIDENCE", "SEED", "Correlation", "Interval", "Paired", "Spread", "bits_per_byte_interval",
    "bleu_interval", "bleu_interval_from_stats", "bleu_score", "bleu_statistics", "exact_sign_flip_p", "holm",
    "holm_levels", "is_empty", "mean_interval", "paired_bits_per_byte", "paired_bleu", "paired_bleu_from_stats",
    "paired_mean", "paired_perplexity", "perplexity_interval", "rank_correlation", "repeated_ngram_rate",
    "replicate_spread", "settle", "sign_flip_test", "unsettled",
]

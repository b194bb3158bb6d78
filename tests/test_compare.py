"""comparisons.csv: the right pairs, the sign B - A, identical answers flagged, Holm over the study."""

import numpy as np
import pytest

from lmsweep import compare, stats


@pytest.fixture(scope="module")
def table(mini_study):
    s = mini_study
    return compare.compare(s["summaries"], s["perplexities"], s["test"], {"tokenize": "13a"}, s["statistics"])


def pick(table, family, metric, a, b):
    c = table[(table.family == family) & (table.metric == metric)
              & (table.model_a == a[0]) & (table.variant_a == a[1]) & (table.decoding_a == a[2])
              & (table.model_b == b[0]) & (table.variant_b == b[1]) & (table.decoding_b == b[2])]
    assert len(c) == 1, (family, metric, a, b, len(c))
    return c.iloc[0]


def test_columns(table):
    assert list(table.columns) == compare.COLUMNS


def test_the_families_and_their_pairs(table):
    families = table.groupby("family").size().to_dict()
    # decoding vs baseline: 2 models x 2 configs x 3 metrics; model vs model: 3 configs x 3 metrics + 2 perplexities;
    # fine-tuned vs base: 2 models x (3 metrics + 3 perplexities)
    assert families["decoding vs baseline"] == 12
    assert families["model vs model"] == 11
    assert families["fine-tuned vs base"] == 12
    # per model, parameter and metric, every value against the best one: 2 models x 2 parameters x 3 metrics
    assert families["sweep value vs best"] == 12
    across = table[(table.family == "model vs model") & (table.decoding_a == "teacher_forced")]
    assert set(across.metric) == {"bits_per_byte", "word_perplexity"}  # never token perplexity across tokenizers


def test_identical_answers_are_flagged_not_tested(table):
    row = pick(table, "decoding vs baseline", "bleu", ("m1", "finetuned", "baseline"), ("m1", "finetuned", "top_k_10"))
    assert row.identical and row.difference == 0 and np.isnan(row.p_value) and np.isnan(row.p_adjusted)
    assert not row.significant and row.better == "" and row.test == "identical answers, not tested"


def test_a_clear_gain_is_significant_and_signed_b_minus_a(table):
    row = pick(table, "fine-tuned vs base", "bleu", ("m1", "base", "baseline"), ("m1", "finetuned", "baseline"))
    assert row.difference > 50 and row.ci_low > 0 and row.significant and row.better == "b"
    assert row.test == "sacrebleu paired bootstrap resampling"
    ppl = pick(table, "fine-tuned vs base", "perplexity", ("m1", "base", "teacher_forced"),
               ("m1", "finetuned", "teacher_forced"))
    assert ppl.difference < 0 and ppl.significant and ppl.better == "b"  # lower perplexity is better


def test_model_pairs_compare_under_the_same_config(table):
    row = pick(table, "model vs model", "rouge_l", ("m1", "finetuned", "baseline"), ("m2", "finetuned", "baseline"))
    assert row.difference < 0 and row.a > row.b


def test_holm_runs_over_every_test_of_the_study(table):
    tested = ~table.identical
    assert np.allclose(table.p_adjusted[tested], stats.holm(table.p_value[tested].to_numpy()))
    assert (table.significant == (table.p_adjusted < 0.05)).all()


def test_a_p_value_at_the_floor_is_redrawn_with_max_resamples(table):
    strong = pick(table, "fine-tuned vs base", "bleu", ("m1", "base", "baseline"), ("m1", "finetuned", "baseline"))
    assert strong.resamples == 2000 and strong.p_value <= 2 / 2001
    weak = table[(~table.identical) & (table.p_value > 0.1)]
    assert len(weak) and set(weak.resamples) == {500}


def test_refined_keeps_a_result_off_the_floor():
    calls = []

    def test(**options):
        calls.append(options["n_resamples"])
        return stats.paired_mean([0.0, 1.0, 0.5, 0.2], [0.1, 0.9, 0.5, 0.3], **options)

    result = compare.refined(test, {"n_resamples": 200, "seed": 1, "confidence_level": 0.95, "max_resamples": 5000})
    assert calls == [200] and result.n_resamples == 200

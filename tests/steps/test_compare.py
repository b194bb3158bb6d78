"""comparisons.csv: the right pairs, the sign B - A, identical answers flagged, Holm over the study."""

import dataclasses
import logging

import numpy as np
import pytest

from lmsweep import stats
from lmsweep.settings import Bleu
from lmsweep.steps import compare


def comparisons(s, **statistics):
    settings = compare.Settings(bleu=Bleu(tokenize="13a"),
                                statistics=dataclasses.replace(s["statistics"], **statistics),
                                bertscore_rescaled=False)
    return compare.comparisons_table(s["summaries"], s["perplexities"], s["test"], settings)


@pytest.fixture(scope="module")
def table(mini_study):
    return comparisons(mini_study)


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
    # per model, parameter and metric, every value against the best one: 2 models x 2 parameters x 3 metrics,
    # descriptive (the best was picked on these data): an interval, no p-value, not in Holm's family
    assert families["sweep value vs best"] == 12
    descriptive = table[table.family == "sweep value vs best"]
    assert descriptive.p_value.isna().all() and not descriptive.in_holm_family.any()
    assert not descriptive.significant.any() and (descriptive.ci_low <= descriptive.ci_high).all()
    assert set(table[table.in_holm_family].family) == {"decoding vs baseline", "model vs model", "fine-tuned vs base"}
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


def test_holm_runs_over_every_test_of_the_study_once(table):
    family = table[table.in_holm_family]
    assert family.p_value.notna().all() and table[~table.in_holm_family].p_value.isna().all()
    assert np.allclose(family.p_adjusted, stats.holm(family.p_value.to_numpy()))
    assert np.allclose(family.holm_level, stats.holm_levels(family.p_value.to_numpy(), 0.05))
    assert (table.significant == (table.p_adjusted < 0.05)).all()
    # no test twice: each metric and pair of runs (in either order) once in the family
    keys = [(r.metric, frozenset([(r.model_a, r.variant_a, r.decoding_a), (r.model_b, r.variant_b, r.decoding_b)]))
            for r in family.itertuples()]
    tested_families = table[table.family != "sweep value vs best"]
    untested = tested_families.identical | tested_families.test.str.startswith("no example's score differs")
    assert len(keys) == len(set(keys)) == 12 + 11 + 12 - int(untested.sum())


def test_p_values_say_how_they_were_made(table):
    family = table[table.in_holm_family]
    bleu, others = family[family.metric == "bleu"], family[family.metric != "bleu"]
    assert set(bleu.test) == {"sacrebleu paired bootstrap resampling"} and (bleu.p_resamples >= 500).all()
    # 30 test examples: every mean and perplexity test is the exact sign-flip test, with no resampling floor
    assert others.test.str.startswith("exact sign-flip test").all() and (others.p_resamples == 0).all()
    assert family.settled.all()


@pytest.mark.parametrize("max_resamples, used, decided", [(2000, 2000, False), (20_000, 5000, True)])
def test_a_monte_carlo_p_value_at_the_floor_is_redrawn_until_holm_can_decide_it(mini_study, max_resamples, used,
                                                                               decided):
    """At alpha 0.002 Holm holds the strongest BLEU tests to about 0.002/m: below the floor 1/501 of 500
    resamples, and below 1/2001 too. They are redrawn up to max_resamples: at 2,000 they stay undecided (not
    significant, and marked unsettled); with up to 20,000, ten times 500 already puts the floor 1/5001
    below their levels, and they are significant. Exact p-values and tests far from their levels are not redrawn."""
    s = mini_study
    table = comparisons(s, alpha=0.002, max_resamples=max_resamples)
    strong = pick(table, "fine-tuned vs base", "bleu", ("m1", "base", "baseline"), ("m1", "finetuned", "baseline"))
    assert strong.p_resamples == used and strong.p_value == pytest.approx(1 / (used + 1))
    assert strong.settled == decided and strong.significant == decided
    assert strong.holm_level < 1 / 2001
    weak = table[table.in_holm_family & (table.metric == "bleu") & (table.p_value > 0.02)]
    assert len(weak) and set(weak.p_resamples) == {500} and weak.settled.all()
    assert (table[table.in_holm_family & (table.metric != "bleu")].p_resamples == 0).all()


def test_compare_says_how_far_it_is(mini_study, caplog):
    """Issue 18: statistics.resamples: 10**9 ran without a bound or a word; the schema bounds it now, and a
    long comparison logs its progress."""
    with caplog.at_level(logging.INFO, logger="lmsweep.steps.compare"):
        table = comparisons(mini_study)
    logged = [r.getMessage() for r in caplog.records if r.name == "lmsweep.steps.compare"]
    assert logged[0] == f"{len(table)} comparisons, 500 resamples each"
    progress = [line for line in logged if line.startswith("compared ")]
    assert 5 <= len(progress) <= 12 and progress[-1] == f"compared {len(table)} of {len(table)}"

"""How sure are we: intervals, paired tests, Holm, rank agreement and output hygiene (lmsweep.stats)."""

import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys

import numpy as np
import sacrebleu
import pytest

from lmsweep import stats

# Every function here promises no warning and no NaN leaking out of degenerate data.
pytestmark = pytest.mark.filterwarnings("error")

N = 400  # resamples in these tests: enough to be stable, small enough to be quick


def _sentences(n: int, noise_a: float, noise_b: float, seed: int = 3):
    """References and two systems that copy them, each word replaced with probability noise_a/noise_b."""
    rnd = random.Random(seed)
    words = "the a cat dog sat on mat ran fast slow big small red blue house tree river stone".split()
    refs = [" ".join(rnd.choices(words, k=rnd.randint(6, 14))) for _ in range(n)]

    def system(noise):
        return [" ".join(w if rnd.random() > noise else rnd.choice(words) for w in r.split()) for r in refs]

    return refs, system(noise_a), system(noise_b)


REFS, SYS_A, SYS_B = _sentences(60, 0.45, 0.35)


def _nll(n: int, seed: int, per_token: float = 2.0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, 40, n)
    return rng.gamma(4.0, per_token / 4.0, n) * tokens, tokens


# --- identical inputs, real differences ------------------------------------------------------------------------


def _pair(kind: str, same: bool):
    """A and B for each paired test; B is A when `same`, else A with its first example changed."""
    if kind == "mean":
        a = np.random.default_rng(0).beta(2, 5, 50)
        b = a.copy() if same else np.r_[a[0] + 0.1, a[1:]]
        return lambda **kw: stats.paired_mean(a, b, **kw)
    if kind in ("perplexity", "bits_per_byte"):
        nll, counts = _nll(50, 0)
        other = nll.copy() if same else np.r_[nll[0] + 5, nll[1:]]
        function = stats.paired_perplexity if kind == "perplexity" else stats.paired_bits_per_byte
        return lambda **kw: function(nll, counts, other, counts.copy(), **kw)
    b = list(SYS_A) if same else [REFS[0]] + SYS_A[1:]
    return lambda **kw: stats.paired_bleu(SYS_A, b, REFS, test=kind.split("-")[1], **kw)


PAIRED = ["mean", "perplexity", "bits_per_byte", "bleu-bs", "bleu-ar"]


@pytest.mark.parametrize("kind", PAIRED)
def test_identical_inputs_are_flagged_with_difference_zero_and_p_one(kind):
    result = _pair(kind, same=True)(n_resamples=N, seed=1)
    assert result.identical
    assert result.difference == 0 and result.a == result.b
    assert result.ci_low <= 0 <= result.ci_high
    assert result.p_value == 1.0
    # one example changed is a real (if small) difference, tested as such
    changed = _pair(kind, same=False)(n_resamples=N, seed=1)
    assert not changed.identical
    assert changed.difference != 0
    if kind.startswith("bleu"):
        assert changed.p_value < 1.0 and changed.test == result.test
    else:
        # The exact sign-flip test: one differing example flipped gives the same |sum|, so p is exactly 1.
        assert changed.p_value == 1.0 and changed.test.startswith("exact sign-flip test (1 examples differ")


def test_sacrebleu_alone_would_give_identical_systems_a_spurious_p(tmp_path):
    """Why paired_bleu flags identical systems itself: sacreBLEU's p is then 1/(R + 1), 'significant'
    (`sacrebleu --paired-bs` prints 0.001 for a system against itself; the README says so)."""
    for name, lines in (("ref", REFS), ("a", SYS_A), ("copy_of_a", SYS_A)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    command = [sys.executable, "-m", "sacrebleu", "ref.txt", "-i", "a.txt", "copy_of_a.txt", "--paired-bs",
               "--paired-bs-n", str(N), "-f", "json"]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[1]["BLEU"]["p_value"] == pytest.approx(1 / (N + 1), abs=1e-4)
    assert stats.paired_bleu(SYS_A, SYS_A, REFS, n_resamples=N, seed=1).p_value == 1.0


def test_a_large_constant_shift_is_significant_and_its_interval_is_the_shift():
    a = np.random.default_rng(0).beta(2, 5, 40)
    result = stats.paired_mean(a, a + 0.3, n_resamples=N, seed=1)
    assert not result.identical
    assert result.p_value < 0.01
    assert result.difference == pytest.approx(0.3)
    # every resampled difference is 0.3: the interval is the point, not a NaN from BCa
    assert result.ci_low == result.ci_high == result.difference


@pytest.mark.parametrize("kind", ["mean", "perplexity", "bits_per_byte", "bleu-bs", "bleu-ar"])
def test_a_real_improvement_is_significant_with_b_minus_a_positive_or_lower_perplexity(kind):
    rng = np.random.default_rng(5)
    if kind == "mean":
        a = rng.beta(2, 5, 60)
        result = stats.paired_mean(a, np.clip(a + rng.normal(0.1, 0.05, 60), 0, 1), n_resamples=N, seed=1)
    elif kind.startswith("bleu"):
        refs, worse, better = _sentences(60, 0.6, 0.2)
        result = stats.paired_bleu(worse, better, refs, test=kind[5:], n_resamples=N, seed=1)
    else:
        nll, counts = _nll(60, 5)
        function = stats.paired_perplexity if kind == "perplexity" else stats.paired_bits_per_byte
        result = function(nll, counts, nll * 0.8, counts, n_resamples=N, seed=1)
    assert result.p_value < 0.01
    assert result.difference == pytest.approx(result.b - result.a)
    sign = -1 if kind in ("perplexity", "bits_per_byte") else 1  # lower is better for these two
    assert sign * result.difference > 0
    assert sign * result.ci_low > 0 and sign * result.ci_high > 0
    assert result.ci_low <= result.difference <= result.ci_high


def test_swapping_a_and_b_negates_the_difference_and_keeps_the_p_value():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 30), rng.normal(0.2, 1, 30)
    ab = stats.paired_mean(a, b, n_resamples=N, seed=4)
    ba = stats.paired_mean(b, a, n_resamples=N, seed=4)
    assert ab.difference == pytest.approx(-ba.difference)
    assert (ab.ci_low, ab.ci_high) == pytest.approx((-ba.ci_high, -ba.ci_low), abs=1e-3)
    assert ab.p_value == ba.p_value


def test_the_ratio_permutation_test_swaps_whole_examples_between_a_and_b():
    """Different token counts in A and B: the swap permutation test, exact (2**6 swaps <= n_resamples),
    checked by enumerating every swap by hand."""
    nll_a, tokens_a = _nll(6, 1)
    nll_b, tokens_b = _nll(6, 2)

    def ppl(nll, tokens):
        return math.exp(sum(nll) / sum(tokens))

    observed = ppl(nll_b, tokens_b) - ppl(nll_a, tokens_a)
    null = []
    for swap in itertools.product([False, True], repeat=6):
        pa = [(nb, tb) if s else (na, ta) for s, na, ta, nb, tb in zip(swap, nll_a, tokens_a, nll_b, tokens_b)]
        pb = [(na, ta) if s else (nb, tb) for s, na, ta, nb, tb in zip(swap, nll_a, tokens_a, nll_b, tokens_b)]
        null.append(ppl(*zip(*pb)) - ppl(*zip(*pa)))
    null, tol = np.array(null), 1e-9 * abs(observed)
    expected = min(1.0, 2 * min(np.mean(null >= observed - tol), np.mean(null <= observed + tol)))

    result = stats.paired_perplexity(nll_a, tokens_a, nll_b, tokens_b, n_resamples=N, seed=1)
    assert result.p_value == pytest.approx(expected)
    assert result.difference == pytest.approx(observed)
    assert result.test == "swap permutation test (scipy, exact)" and result.p_resamples == 0
    # With more examples than swaps to enumerate, it is a Monte-Carlo test, and says so.
    nll_a, tokens_a = _nll(30, 1)
    nll_b, tokens_b = _nll(30, 2)
    many = stats.paired_perplexity(nll_a, tokens_a, nll_b, tokens_b, n_resamples=N, seed=1)
    assert many.test == "swap permutation test (scipy, Monte Carlo)" and many.p_resamples == N


def test_bits_per_byte_with_one_byte_per_example_is_the_mean_nll_in_bits():
    """With every count 1 the ratio is a mean: the same resamples give the paired mean's numbers / ln 2."""
    nll_a, _ = _nll(40, 1)
    nll_b, _ = _nll(40, 2, per_token=2.3)
    ones = np.ones(40)
    bpb = stats.paired_bits_per_byte(nll_a, ones, nll_b, ones, n_resamples=N, seed=3)
    mean = stats.paired_mean(nll_a, nll_b, n_resamples=N, seed=3)
    ln2 = math.log(2)
    assert bpb.difference == pytest.approx(mean.difference / ln2)
    assert (bpb.ci_low, bpb.ci_high) == pytest.approx((mean.ci_low / ln2, mean.ci_high / ln2))
    assert bpb.p_value == pytest.approx(mean.p_value)
    assert bpb.test == mean.test + " of the NLL"


# --- BLEU: sacreBLEU's own numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_paired_bleu_matches_the_sacrebleu_command_line(tmp_path, test):
    for name, lines in (("ref", REFS), ("a", SYS_A), ("b", SYS_B)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    n, seed = (300, 7) if test == "bs" else (500, 11)
    command = [sys.executable, "-m", "sacrebleu", "ref.txt", "-i", "a.txt", "b.txt",
               f"--paired-{test}", f"--paired-{test}-n", str(n), "-f", "json"]
    out = subprocess.run(command, cwd=tmp_path, env={**os.environ, "SACREBLEU_SEED": str(seed)},
                         capture_output=True, text=True, check=True)
    baseline, system = (entry["BLEU"] for entry in json.loads(out.stdout))

    result = stats.paired_bleu(SYS_A, SYS_B, REFS, test=test, n_resamples=n, seed=seed)
    assert 0.01 < system["p_value"] < 0.9  # a p-value that a wrong seed or count would move
    assert result.p_value == pytest.approx(system["p_value"], abs=1e-12)
    assert (result.a, result.b) == pytest.approx((baseline["score"], system["score"]), abs=1e-9)
    if test == "bs":  # the CLI prints each system's bootstrap mean ± 95% half-width
        assert (result.details["a_mean"], result.details["a_ci"]) == pytest.approx(
            (baseline["mean"], baseline["ci"]), abs=1e-9)
        assert (result.details["b_mean"], result.details["b_ci"]) == pytest.approx(
            (system["mean"], system["ci"]), abs=1e-9)
    assert f"{test}:{n}" in result.details["signature"] and f"seed:{seed}" in result.details["signature"]
    assert result.ci_low < result.difference < result.ci_high
    # the same seed again gives the same numbers; another gives other resamples
    assert stats.paired_bleu(SYS_A, SYS_B, REFS, test=test, n_resamples=n, seed=seed) == result
    other = stats.paired_bleu(SYS_A, SYS_B, REFS, test=test, n_resamples=n, seed=seed + 1)
    assert (other.p_value, other.ci_low) != (result.p_value, result.ci_low)


def test_bleu_interval_is_about_corpus_bleu_not_the_mean_of_sentence_bleu():
    import sacrebleu
    from scipy.stats import bootstrap

    corpus = sacrebleu.corpus_bleu(SYS_A, [REFS]).score
    sentence_mean = np.mean([sacrebleu.sentence_bleu(p, [r]).score for p, r in zip(SYS_A, REFS)])
    assert abs(corpus - sentence_mean) > 1  # these sentences tell the two apart

    result = stats.bleu_interval(SYS_A, REFS, n_resamples=200, seed=5)
    assert result.value == pytest.approx(corpus, abs=1e-9)
    assert result.ci_low < corpus < result.ci_high
    assert result.method == "bootstrap BCa (scipy)"

    # The slow, plain way: sacreBLEU's corpus_bleu on each resample of sentences, same draws.
    def resampled_corpus_bleu(index):
        index = index.astype(int)
        return sacrebleu.corpus_bleu([SYS_A[i] for i in index], [[REFS[i] for i in index]]).score

    plain = bootstrap((np.arange(len(REFS)),), resampled_corpus_bleu, vectorized=False, n_resamples=200,
                      method="BCa", rng=np.random.default_rng(5)).confidence_interval
    assert (result.ci_low, result.ci_high) == pytest.approx((plain.low, plain.high), abs=1e-9)


def test_perplexity_and_bits_per_byte_intervals_contain_the_pooled_ratio():
    from lmsweep.answer_nll import perplexity

    nll, tokens = _nll(80, 4)
    ppl = stats.perplexity_interval(nll, tokens, n_resamples=N, seed=1)
    assert ppl.value == pytest.approx(perplexity(nll, tokens))
    # the pooled ratio, not the mean of per-example perplexities
    assert ppl.value != pytest.approx(np.mean(np.exp(nll / tokens)), rel=1e-3)
    assert ppl.ci_low < ppl.value < ppl.ci_high

    n_bytes = tokens * 4 + 1
    bpb = stats.bits_per_byte_interval(nll, n_bytes, n_resamples=N, seed=1)
    assert bpb.value == pytest.approx(nll.sum() / n_bytes.sum() / math.log(2))
    assert bpb.ci_low < bpb.value < bpb.ci_high


# --- intervals: width, seeds, degenerate data ------------------------------------------------------------------


def test_intervals_shrink_as_the_test_set_grows():
    rng = np.random.default_rng(8)
    scores = rng.beta(2, 5, 500)
    nll, tokens = _nll(500, 8)

    def width(interval):
        return interval.ci_high - interval.ci_low

    small, large = (stats.mean_interval(scores[:n], n_resamples=N, seed=1) for n in (20, 500))
    assert width(large) < width(small) / 2  # ~sqrt(500 / 20) = 5 times narrower
    small, large = (stats.perplexity_interval(nll[:n], tokens[:n], n_resamples=N, seed=1) for n in (20, 500))
    assert width(large) < width(small) / 2


@pytest.mark.parametrize("make", [
    lambda seed: stats.mean_interval(np.random.default_rng(0).beta(2, 5, 40), n_resamples=N, seed=seed),
    lambda seed: stats.bleu_interval(SYS_A, REFS, n_resamples=100, seed=seed),
    lambda seed: stats.perplexity_interval(*_nll(40, 0), n_resamples=N, seed=seed),
    lambda seed: stats.paired_mean(*np.random.default_rng(0).beta(2, 5, (2, 40)), n_resamples=N, seed=seed),
], ids=["mean", "bleu", "perplexity", "paired_mean"])
def test_the_same_seed_gives_the_same_interval_and_another_seed_another(make):
    first, again, other = make(1), make(1), make(2)
    assert again == first
    assert first.seed == 1 and other.seed == 2
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_all_values_equal_give_the_point_as_interval():
    constant = stats.mean_interval(np.full(30, 0.25), n_resamples=N, seed=1)
    assert constant.ci_low == constant.value == constant.ci_high == 0.25
    assert constant.method.startswith("degenerate")
    # every example at the same NLL per token: every resample has the same perplexity
    tokens = np.arange(1, 31)
    ppl = stats.perplexity_interval(1.5 * tokens, tokens, n_resamples=N, seed=1)
    assert ppl.ci_low == ppl.ci_high == ppl.value == pytest.approx(math.exp(1.5))
    perfect = stats.bleu_interval(REFS, REFS, n_resamples=50, seed=1)
    assert perfect.ci_low == perfect.ci_high == perfect.value == pytest.approx(100)


def test_few_discrete_scores_never_give_nan():
    rng = np.random.default_rng(1)
    for seed in range(150):
        a, b = rng.integers(0, 3, (2, int(rng.integers(2, 7)))).astype(float)
        for result in (stats.mean_interval(a, n_resamples=99, seed=seed),
                       stats.paired_mean(a, b, n_resamples=99, seed=seed)):
            assert not math.isnan(result.ci_low) and not math.isnan(result.ci_high)
            assert result.ci_low <= result.ci_high


def test_where_bca_is_undefined_the_percentile_interval_of_the_same_resamples_stands_in():
    from scipy.stats import DegenerateDataWarning, bootstrap

    scores, n_resamples, seed = np.array([3.0, 3, 2, 0, 2, 3, 3]), 9, 1432  # found by search: BCa gives NaN

    def run(method):
        return bootstrap((scores,), np.mean, n_resamples=n_resamples, method=method,
                         rng=np.random.default_rng(seed)).confidence_interval

    with pytest.warns(DegenerateDataWarning), np.errstate(all="ignore"):
        assert math.isnan(run("BCa").low)
    result = stats.mean_interval(scores, n_resamples=n_resamples, seed=seed)
    assert result.method == "bootstrap percentile (scipy; BCa undefined on these data)"
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(run("percentile")))


@pytest.mark.parametrize("call, message", [
    (lambda: stats.mean_interval([0.5]), r"values: got shape \(1,\).*at least 2"),
    (lambda: stats.mean_interval([0.5, float("nan"), 0.1]), r"values\[1\] is nan"),
    (lambda: stats.paired_mean([0.1, 0.2, 0.3], [0.1, 0.2]), r"lengths differ: \{'a': 3, 'b': 2\}.*aligned"),
    (lambda: stats.perplexity_interval([1.0, 2.0], [3, 0]), r"tokens\[1\] is 0.*drop it"),
    (lambda: stats.bits_per_byte_interval([1.0, -2.0], [3, 4]), r"nll\[1\] is -2.0.*>= 0"),
    (lambda: stats.paired_bleu(SYS_A, SYS_B, REFS, test="t"), r"test is 't'; use 'bs'.*or 'ar'"),
    (lambda: stats.bleu_interval(SYS_A[:3], REFS[:2]), r"lengths differ"),
])
def test_bad_input_names_the_value_and_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- Holm --------------------------------------------------------------------------------------------------------


def test_holm_matches_a_hand_worked_example():
    """m = 5; sort, multiply the i-th smallest by m - i + 1, carry the running maximum, cap at 1.

    p      sorted  factor  product  running max  -> in input order
    0.010  0.005   5       0.025    0.025           0.040
    0.040  0.010   4       0.040    0.040           0.090
    0.030  0.030   3       0.090    0.090           0.090
    0.005  0.040   2       0.080    0.090           0.025
    0.200  0.200   1       0.200    0.200           0.200
    """
    adjusted = stats.holm([0.010, 0.040, 0.030, 0.005, 0.200])
    assert adjusted == pytest.approx([0.040, 0.090, 0.090, 0.025, 0.200])


def test_holm_caps_at_one_and_passes_nan_through_uncounted():
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # 1.2 -> 1, then max(1, 0.7)
    adjusted = stats.holm([0.01, float("nan"), 0.04])  # m = 2, not 3
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])
    assert stats.holm([]).size == 0


def test_holm_is_monotone_and_between_the_raw_p_and_bonferroni():
    p = np.random.default_rng(3).uniform(0, 0.2, 12)
    adjusted = stats.holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted >= p) and np.all(adjusted <= np.minimum(1, len(p) * p))


# --- agreement between metrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["spearman", "kendall"])
def test_rank_correlation_is_scipys_on_the_runs_that_have_both_metrics(method):
    from scipy import stats as scipy_stats

    bleu = [10.0, 12.0, 12.0, 15.0, float("nan"), 20.0, 18.0]  # a tie and a run without BLEU
    rouge = [0.30, 0.31, 0.35, 0.33, 0.40, 0.45, 0.41]
    result = stats.rank_correlation(bleu, rouge, method)
    keep = [i for i, v in enumerate(bleu) if not math.isnan(v)]
    function = scipy_stats.spearmanr if method == "spearman" else scipy_stats.kendalltau
    expected = function([bleu[i] for i in keep], [rouge[i] for i in keep])
    assert (result.rho, result.p_value, result.n) == pytest.approx((expected.statistic, expected.pvalue, 6))
    assert result.reason == ""
    # any strictly increasing relation ranks the runs alike
    monotone = stats.rank_correlation([1, 2, 3, 4, 5], [0.1, 0.2, 5.0, 7.0, 100.0], method)
    assert monotone.rho == pytest.approx(1.0)


def test_rank_correlation_of_a_constant_or_too_few_runs_is_nan_with_a_reason():
    constant = stats.rank_correlation([1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5])
    assert math.isnan(constant.rho) and math.isnan(constant.p_value)
    assert "y has the same value on every run" in constant.reason
    few = stats.rank_correlation([1.0, 2.0, float("nan")], [3.0, 4.0, 5.0], "kendall")
    assert few.n == 2 and math.isnan(few.rho) and "at least 3" in few.reason
    with pytest.raises(ValueError, match="method is 'pearson'"):
        stats.rank_correlation([1, 2, 3], [1, 2, 3], "pearson")


# --- seeds, output hygiene -------------------------------------------------------------------------------------


def test_replicate_spread_is_the_sample_spread_across_seeds():
    values = {1: 31.2, 2: 29.8, 3: 30.5, 4: 33.0}
    spread = stats.replicate_spread(values)
    assert spread.mean == pytest.approx(statistics.mean(values.values()))
    assert spread.std == pytest.approx(statistics.stdev(values.values()))
    assert (spread.min, spread.max, spread.n_seeds) == (29.8, 33.0, 4)
    assert stats.replicate_spread([0.4, 0.4]).std == 0
    single = stats.replicate_spread({7: 0.5})
    assert single.n_seeds == 1 and single.mean == 0.5 and math.isnan(single.std)
    with pytest.raises(ValueError, match="seed 3: value is nan"):
        stats.replicate_spread({1: 0.2, 3: float("nan")})


@pytest.mark.parametrize("text, n, rate", [
    ("a b c a b c", 3, 1 / 4),              # abc bca cab abc: the last repeats the first
    ("the cat sat on the mat", 3, 0.0),     # 'the' repeats, no 3-gram does
    ("the the the the", 1, 3 / 4),
    ("yes yes yes yes yes", 2, 3 / 4),
    ("too short", 3, 0.0),
    ("", 3, 0.0),
])
def test_repeated_ngram_rate(text, n, rate):
    assert stats.repeated_ngram_rate(text, n) == pytest.approx(rate)


def test_a_looping_answer_repeats_more_than_a_plain_one():
    plain = "Paris is the capital of France and its largest city."
    looping = "Paris is the capital. " * 6
    assert stats.repeated_ngram_rate(looping) > 0.5 > stats.repeated_ngram_rate(plain)


@pytest.mark.parametrize("text, empty", [("", True), ("  \n\t", True), (" a ", False), (".", False)])
def test_is_empty(text, empty):
    assert stats.is_empty(text) is empty


def test_bleu_from_statistics_matches_bleu_from_sentences():
    """The statistics path (used for pooled seed replicates) is the string path for one replicate."""
    refs = ["the cat sat on the mat", "a dog ran in the park", "it is raining today", "she reads a book",
            "we went to the market", "the sun is bright"]
    a = ["the cat sat on a mat", "a dog ran in a park", "it rains today", "she reads books", "we went to market",
         "sun is bright"]
    b = ["the cat sat on the mat", "dog ran in the park", "it is raining", "she reads a book", "we go to the market",
         "the sun is very bright"]
    from_strings = stats.paired_bleu(a, b, refs, n_resamples=200, seed=3)
    from_stats = stats.paired_bleu_from_stats(stats.bleu_statistics(a, refs), stats.bleu_statistics(b, refs),
                                              n_resamples=200, seed=3)
    assert from_stats.as_dict() == from_strings.as_dict()
    pooled = stats.bleu_statistics(a, refs) + stats.bleu_statistics(b, refs)
    assert stats.bleu_score(pooled) == pytest.approx(sacrebleu.corpus_bleu(a + b, [refs + refs]).score, abs=1e-9)
    # Per-sentence statistics from the public API are sacreBLEU's own.
    from sacrebleu.metrics import BLEU

    assert stats.bleu_statistics(a, refs).tolist() == [list(map(int, row)) for row in
                                                       BLEU()._extract_corpus_statistics(a, [refs])]


# --- p-values that no number of resamples bounds (issue 17) ----------------------------------------------------


def _exact_scipy(d):
    from scipy.stats import permutation_test

    return permutation_test((np.asarray(d, float),), lambda x, axis: np.sum(x, axis=axis), permutation_type="samples",
                            n_resamples=np.inf, alternative="two-sided").pvalue


@pytest.mark.parametrize("n", [2, 5, 9, 13, 16])
def test_the_exact_sign_flip_test_is_scipys_exact_permutation_test(n):
    """Meet in the middle gives scipy's enumeration of every sign pattern, ties and zeros included."""
    rng = np.random.default_rng(n)
    for d in (rng.normal(0.3, 1.0, n), rng.integers(-2, 3, n).astype(float), np.round(rng.beta(2, 5, n) - 0.2, 2)):
        assert stats.exact_sign_flip_p(d) == pytest.approx(_exact_scipy(d), rel=1e-12)


def test_examples_that_do_not_differ_do_not_change_the_sign_flip_p_value():
    d = np.array([0.3, -0.1, 0.25, 0.4, 0.05, 0.2])
    with_zeros = np.r_[d, np.zeros(30)]  # 36 examples: scipy alone would need 2**36 patterns
    assert stats.exact_sign_flip_p(with_zeros) == pytest.approx(_exact_scipy(d), rel=1e-12)
    p, test = stats.sign_flip_test(with_zeros)
    assert p == pytest.approx(_exact_scipy(d)) and test.startswith("exact sign-flip test (6 examples differ")


def test_a_consistent_difference_on_24_examples_goes_below_any_resampling_floor():
    """The demo's 24 test examples, every one better in B: the exact p-value is 2 / 2**24, not 2/(R + 1)."""
    rng = np.random.default_rng(4)
    a = rng.beta(2, 5, 24)
    result = stats.paired_mean(a, a + rng.uniform(0.01, 0.2, 24), n_resamples=N, seed=1)
    assert result.p_value == pytest.approx(2 / 2**24) and result.p_value < 1 / (20_000 + 1)
    assert result.p_resamples == 0 and result.test.startswith("exact sign-flip test (24 examples differ")
    # and Holm over a study's 316 tests keeps it significant: 316 * 1.2e-7 < 0.05
    assert stats.holm([result.p_value] + [0.5] * 315)[0] < 0.05


@pytest.mark.parametrize("kind", ["normal", "skewed", "discrete with ties", "heavy tails"])
@pytest.mark.parametrize("n", [60, 200])
def test_the_t_test_for_large_n_agrees_with_the_permutation_test(kind, n):
    """Above 40 differing examples the paired t-test stands in for the sign-flip test: checked here against
    scipy's Monte-Carlo permutation test of the same differences (200,000 sign patterns)."""
    from scipy.stats import permutation_test

    rng = np.random.default_rng(n)
    noise = {"normal": lambda: rng.normal(0, 1, n), "skewed": lambda: rng.gamma(0.5, 1.0, n),
             "discrete with ties": lambda: rng.choice([-0.2, 0.0, 0.0, 0.1, 0.3], n),
             "heavy tails": lambda: rng.standard_t(3, n)}[kind]()
    # centred, then shifted by 2.5 standard errors: p-values around 0.01, where the two can be told apart
    d = noise - noise.mean() + 2.5 * noise.std(ddof=1) / math.sqrt(n)
    p, test = stats.sign_flip_test(d)
    assert test.startswith("paired t-test")
    reference = permutation_test((d,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                                 n_resamples=200_000, alternative="two-sided", rng=np.random.default_rng(1)).pvalue
    assert 1e-4 < reference < 0.9, reference  # a p-value in the range where the two can be told apart
    assert p == pytest.approx(reference, rel=0.25, abs=0.01)


def test_the_t_test_never_goes_below_the_exact_tests_floor():
    p, test = stats.sign_flip_test(np.full(50, 0.1))  # every example moved by the same amount
    assert p == 2.0**-49 and "exact floor" in test
    p, _ = stats.sign_flip_test(np.r_[np.full(49, 0.1), 0.1000001])
    assert p >= 2.0**-49


def test_a_ratio_with_the_same_counts_in_a_and_b_is_a_sign_flip_test_of_the_nll():
    nll_a, tokens = _nll(24, 1)
    nll_b = nll_a * np.random.default_rng(2).uniform(0.5, 0.9, 24)  # B better on every example
    result = stats.paired_bits_per_byte(nll_a, tokens * 4, nll_b, tokens * 4, n_resamples=N, seed=1)
    assert result.p_value == pytest.approx(2 / 2**24) and result.p_resamples == 0
    assert result.test == "exact sign-flip test (24 examples differ: 2^24 sign patterns) of the NLL"


# --- Holm's levels, and Monte-Carlo p-values settled against them ----------------------------------------------


def test_holm_levels_are_alpha_over_the_remaining_count():
    levels = stats.holm_levels([0.03, np.nan, 0.001, 0.2], alpha=0.05)
    assert levels[2] == pytest.approx(0.05 / 3) and levels[0] == pytest.approx(0.05 / 2)
    assert levels[3] == pytest.approx(0.05) and np.isnan(levels[1])


class _MonteCarlo:
    """A stand-in Monte-Carlo test whose p-value is the true one plus its +1 rule, (p R + 1) / (R + 1)."""

    def __init__(self, true_p):
        self.true_p, self.calls = true_p, []

    def __call__(self, n_resamples, seed):
        self.calls.append(n_resamples)
        p = (math.floor(self.true_p * n_resamples) + 1) / (n_resamples + 1)
        return stats.Paired(0.0, 1.0, 1.0, 0.5, 1.5, p, False, "mc", n_resamples, seed, 24, p_resamples=n_resamples)


def test_settle_redraws_only_the_tests_whose_decision_the_floor_could_turn(lmsweep_log):
    """A study of 303 tests: Holm holds the strongest to 0.05/303 = 1.65e-4, below the floor 1/1001 of
    1,000 resamples. The test at the floor is redrawn with 10,000 (floor 1e-4) and decided; a test far from
    its level is not redrawn; an exact p-value never is."""
    strong, weak = _MonteCarlo(1e-6), _MonteCarlo(0.4)
    exact = [stats.Paired(0.0, 1.0, 1.0, 0.5, 1.5, 0.5, False, "exact", 0, 1, 24) for _ in range(300)]
    first = [strong(1000, 1), weak(1000, 1)] + exact + [None]
    settled = stats.settle(first, [strong, weak] + [None] * 301, alpha=0.05, max_resamples=100_000)
    logged = lmsweep_log()
    assert strong.calls == [1000, 10_000] and settled[0].p_value == pytest.approx(1 / 10_001)
    assert settled[0].seed == 2  # an independent redraw
    assert weak.calls == [1000] and settled[1].p_value == first[1].p_value
    assert settled[2:] == first[2:]
    assert len(logged) == 1 and "10000 resamples" in logged[0]
    assert not any(stats.unsettled(settled, alpha=0.05))
    assert stats.holm([r.p_value if r else np.nan for r in settled])[0] < 0.05


def test_a_test_still_open_at_max_resamples_is_reported_unsettled():
    """A true p of 3e-4 against a level of 1.65e-4: 1,000 and 10,000 resamples cannot tell, nor can the
    cap of 100,000; it stays not significant and is marked unsettled."""
    strong, close = _MonteCarlo(1e-6), _MonteCarlo(3e-4)
    exact = [stats.Paired(0.0, 1.0, 1.0, 0.5, 1.5, 0.5, False, "exact", 0, 1, 24) for _ in range(301)]
    settled = stats.settle([strong(1000, 1), close(1000, 1)] + exact, [strong, close] + [None] * 301, alpha=0.05,
                           max_resamples=100_000)
    assert close.calls == [1000, 10_000, 100_000]
    assert stats.unsettled(settled, alpha=0.05)[1] and not any(stats.unsettled(settled, alpha=0.05)[2:])
    assert not stats.unsettled(settled, alpha=0.05)[0]

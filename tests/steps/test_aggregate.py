"""scores.csv: every number pooled over seed replicates, with its interval; every input checked."""

import json
import math
import shutil

import pandas as pd
import pytest
import sacrebleu

from lmsweep import checks
from lmsweep.io import read_jsonl
from lmsweep.settings import Bleu
from lmsweep.steps import aggregate


def scores_table(summaries, perplexities, test, statistics):
    settings = aggregate.Settings(bleu=Bleu(tokenize="13a"), statistics=statistics, bertscore_rescaled=False)
    return aggregate.scores_table(summaries, perplexities, test, settings)


@pytest.fixture(scope="module")
def table(mini_study):
    s = mini_study
    return scores_table(s["summaries"], s["perplexities"], s["test"], s["statistics"])


def rows(table, model, variant, decoding):
    return table[(table.model == model) & (table.variant == variant) & (table.decoding == decoding)] \
        .set_index("metric")


def test_columns_and_one_row_per_run_and_metric(table):
    assert list(table.columns) == aggregate.COLUMNS
    assert not table.duplicated(["model", "variant", "decoding", "metric"]).any()
    runs = table[table.decoding != "teacher_forced"][["model", "variant", "decoding"]].drop_duplicates()
    assert len(runs) == 2 * (3 + 1)
    metrics = set(table[table.decoding != "teacher_forced"].metric)
    assert metrics == {"bleu", "rouge_l", "bertscore_f1", "empty", "hit_max_new_tokens", "repeated_3gram_rate"}
    assert set(table[table.decoding == "teacher_forced"].metric) == {"perplexity", "bits_per_byte",
                                                                     "word_perplexity"}


def test_every_number_says_which_weights_made_it(table):
    """inference.weights: generation rows carry the weights of their answers, perplexity rows their own."""
    weights = table.groupby(["model", "variant"]).weights.unique().to_dict()
    assert list(weights[("m1", "finetuned")]) == ["merged: adapter merged into the dequantized 4-bit base"]
    assert list(weights[("m2", "finetuned")]) == ["as trained: 4-bit base + adapter"]
    assert list(weights[("m1", "base")]) == ["as trained: 4-bit base"]
    assert table.weights.notna().all()


def test_bleu_is_corpus_bleu_pooled_over_replicates(table, mini_study):
    folder = mini_study["folder"] / "score" / "m2" / "finetuned" / "baseline"
    predictions, references = [], []
    for rep in (0, 1):
        frame = pd.read_csv(folder / f"rep{rep}.per_example.csv", keep_default_na=False)
        predictions += frame.prediction.tolist()
        references += frame.reference.tolist()
    expected = sacrebleu.corpus_bleu(predictions, [references]).score
    row = rows(table, "m2", "finetuned", "baseline").loc["bleu"]
    assert row.value == pytest.approx(expected, abs=1e-9)
    assert row.replicates == 2
    per_seed = [json.loads((folder / f"rep{r}.json").read_text())["metrics"]["bleu"]["score"] for r in (0, 1)]
    assert row.replicate_sd == pytest.approx(pd.Series(per_seed).std(), abs=1e-9)
    assert (row.replicate_min, row.replicate_max) == (min(per_seed), max(per_seed))
    # corpus BLEU of all answers, not the mean of the replicates' BLEU nor of sentence BLEU
    assert row.value != pytest.approx(sum(per_seed) / 2, abs=1e-6)


def test_mean_metrics_average_each_example_over_replicates(table, mini_study):
    folder = mini_study["folder"] / "score" / "m2" / "finetuned" / "baseline"
    frames = [pd.read_csv(folder / f"rep{r}.per_example.csv") for r in (0, 1)]
    expected = ((frames[0].rouge_l + frames[1].rouge_l) / 2).mean()
    assert rows(table, "m2", "finetuned", "baseline").loc["rouge_l"].value == pytest.approx(expected)


def test_every_value_lies_in_its_interval_and_says_how_it_was_made(table):
    assert (table.ci_low <= table.value + 1e-9).all() and (table.value <= table.ci_high + 1e-9).all()
    bleu = table[table.metric == "bleu"]
    assert (bleu.ci_high > bleu.ci_low).any()
    assert table.interval.str.contains("500 resamples, seed 1, 95%").all()


def test_perplexity_rows(table, mini_study):
    frame = pd.read_csv(mini_study["folder"] / "perplexity" / "m1" / "finetuned.per_example.csv")
    got = rows(table, "m1", "finetuned", "teacher_forced")
    assert got.loc["perplexity"].value == pytest.approx(math.exp(frame.nll.sum() / frame.tokens.sum()))
    # the answers' own tokens, without the EOS, as lm-evaluation-harness counts them
    assert got.loc["bits_per_byte"].value == pytest.approx(frame.nll_text.sum() / frame.bytes.sum() / math.log(2))
    assert got.loc["word_perplexity"].value == pytest.approx(math.exp(frame.nll_text.sum() / frame.words.sum()))
    assert frame.nll_text.sum() < frame.nll.sum()
    assert not got.higher_is_better.any()


def test_sweep_columns_come_from_the_summaries(table):
    swept = table[table.decoding == "top_k_10"]
    assert set(swept.sweep_parameter) == {"top_k"} and set(swept.sweep_value) == {10}
    assert table[table.decoding == "baseline"].sweep_parameter.isna().all()


def test_run_writes_the_table_it_returns(mini_study, tmp_path):
    s = mini_study
    paths = aggregate.Paths(checked="", test=str(s["test"]), scores=list(map(str, s["summaries"])), per_example=[],
                            perplexities=list(map(str, s["perplexities"])), perplexity_examples=[],
                            table=str(tmp_path / "scores.csv"))
    settings = aggregate.Settings(bleu=Bleu(tokenize="13a"), statistics=s["statistics"], bertscore_rescaled=False)
    returned = aggregate.run(settings, paths)
    pd.testing.assert_frame_equal(pd.read_csv(paths.table),
                                  pd.read_csv(pd.io.common.StringIO(returned.to_csv(index=False))))


# --- inputs that would make a wrong number ---------------------------------------------------------------------


@pytest.fixture
def copy_of(mini_study, tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(mini_study["folder"], folder)
    summaries = sorted(folder.glob("score/*/*/*/rep*.json"))
    perplexities = sorted(folder.glob("perplexity/*/*.json"))
    return folder, summaries, perplexities


def test_a_per_example_file_cut_short_is_an_error_naming_it(copy_of, mini_study):
    folder, summaries, perplexities = copy_of
    cut = folder / "score" / "m1" / "finetuned" / "top_k_10" / "rep1.per_example.csv"
    lines = cut.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[:13]))
    with pytest.raises(checks.IntermediateFileError, match=r"rep1\.per_example\.csv holds 12 rows for the 30 "
                                                           r"records of .*18 test id\(s\) missing.*--forcerun"):
        scores_table(summaries, perplexities, folder / "test.jsonl", mini_study["statistics"])


def test_a_summary_of_another_split_is_an_error(copy_of, mini_study):
    folder, summaries, perplexities = copy_of
    test = read_jsonl(folder / "test.jsonl")
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test[:20]))
    with pytest.raises(checks.IntermediateFileError, match="scored 30 examples; .*test.jsonl has 20"):
        scores_table(summaries, perplexities, folder / "test.jsonl", mini_study["statistics"])


def test_a_non_number_in_a_score_column_is_an_error(copy_of, mini_study):
    folder, summaries, perplexities = copy_of
    path = folder / "perplexity" / "m2" / "base.per_example.csv"
    frame = pd.read_csv(path)
    frame["nll"] = frame["nll"].astype(object)
    frame.loc[3, "nll"] = "oops"
    frame.to_csv(path, index=False)
    with pytest.raises(checks.IntermediateFileError, match=r"base\.per_example\.csv: column nll has 1 cell"):
        scores_table(summaries, perplexities, folder / "test.jsonl", mini_study["statistics"])

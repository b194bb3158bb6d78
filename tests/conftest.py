"""Fixtures shared by the unit tests: demo records and tiny models, built offline once per session."""

import pytest

from lmsweep.demo_data import make_tasks
from lmsweep.prompts import format_prompt

# Small enough to build in a second; the demo tasks' prompts fit its 256 positions.
TINY_SIZE = {
    "vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
    "num_layers": 1, "num_heads": 2, "max_position_embeddings": 256,
}


def tiny_spec(architecture: str, **size):
    """The typed build settings of a tiny model (lmsweep.settings.Build)."""
    from lmsweep.settings import Build

    return Build(architecture=architecture, **{**TINY_SIZE, **size})


@pytest.fixture(scope="session")
def demo_records():
    """Demo task records with 1-based ids, as data.validate() returns them."""
    return [{"id": i, **r} for i, r in enumerate(make_tasks(n=60, seed=11), start=1)]


@pytest.fixture(scope="session")
def build_tiny(tmp_path_factory):
    """build_tiny(architecture) -> folder with a seeded random-weight model and its BPE tokenizer."""
    from lmsweep import tiny

    texts = [format_prompt(r) + r["output"] for r in make_tasks(n=300, seed=0)]
    built = {}

    def build(architecture: str):
        if architecture not in built:
            built[architecture] = tmp_path_factory.mktemp(f"tiny_{architecture}")
            tiny.build(tiny_spec(architecture), texts, seed=0, out_dir=built[architecture])
        return built[architecture]

    return build


@pytest.fixture(scope="session")
def tiny_llama(build_tiny):
    return build_tiny("llama")


@pytest.fixture(scope="session")
def llama2_layout(tiny_llama, tmp_path_factory):
    """The tiny Llama laid out as Llama-2's folders are: a tokenizer without a pad token, and a
    generation_config.json with the model's own decoding defaults (Meta's: sampling, top_p 0.9,
    temperature 0.6, max_length 4096; pad_token_id 0)."""
    import json
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("llama2_layout") / "model"
    shutil.copytree(tiny_llama, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["pad_token_id"] = None
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "generation_config.json").write_text(json.dumps({
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": 0,
        "do_sample": True, "temperature": 0.6, "top_p": 0.9, "max_length": 4096,
    }))
    return folder


@pytest.fixture(scope="session")
def mini_study(tmp_path_factory):
    """The files scoring and perplexity leave for aggregate, compare and report, for a small made-up study.

    30 test records; models m1 and m2; configs baseline, top_k_10 and num_beams_2 (sweeps around a
    sampled baseline) fine-tuned, and baseline for the base variant. m1's fine-tuned answers are
    mostly the references (m1 is best), m2's half of them, base answers are wrong; m1's top_k_10
    gives m1's baseline answers (identical runs); baseline and top_k_10 have 2 seed replicates.
    Metrics are computed by the real libraries (sacreBLEU, rouge-score); BERTScore stands in as
    a fixed function of ROUGE-L (BERTScore's model is not what these tests test). The summaries are
    the steps' own records (lmsweep.records), written by their one writer.
    """
    import math

    import pandas as pd

    from lmsweep import answer_nll, metrics
    from lmsweep.io import write_jsonl
    from lmsweep.records import PerplexitySummary, ScoreSummary, per_example_path
    from lmsweep.settings import Statistics

    folder = tmp_path_factory.mktemp("mini_study")
    tasks = [{"id": i, **r} for i, r in enumerate(make_tasks(n=30, seed=5), start=1)]
    write_jsonl(folder / "test.jsonl", tasks)
    baseline = {"do_sample": True, "top_k": 50, "num_beams": 1, "temperature": 0.8, "max_new_tokens": 8}
    configs = {"baseline": (baseline, None), "top_k_10": ({**baseline, "top_k": 10}, ["top_k", 10]),
               "num_beams_2": ({**baseline, "num_beams": 2}, ["num_beams", 2])}
    right = {("m1", "finetuned"): 0.9, ("m2", "finetuned"): 0.5, ("m1", "base"): 0.0, ("m2", "base"): 0.0}
    # m1 generates from its merged model, m2 as trained (inference.weights)
    weights = {("m1", "finetuned"): "merged: adapter merged into the dequantized 4-bit base",
               ("m2", "finetuned"): "as trained: 4-bit base + adapter",
               ("m1", "base"): "as trained: 4-bit base", ("m2", "base"): "as trained: 4-bit base"}

    def answers(model, variant, decoding, rep):
        share = right[(model, variant)] - (0.2 if decoding == "num_beams_2" else 0.0)
        salt = 0 if decoding == "top_k_10" else {"baseline": 0, "num_beams_2": 7}[decoding]
        out = []
        for k, r in enumerate(tasks):
            good = ((k * 7 + rep * 3 + salt) % 10) < share * 10
            out.append(r["output"] if good else f"wrong answer {k} {rep}")
        return out

    summaries = []
    for model in ("m1", "m2"):
        for variant, decodings in (("finetuned", configs), ("base", ["baseline"])):
            for decoding in decodings:
                settings, sweep = configs[decoding]
                for rep in range(2 if settings["num_beams"] == 1 else 1):
                    preds = answers(model, variant, decoding, rep)
                    refs = [r["output"] for r in tasks]
                    bleu = metrics.bleu(preds, refs)
                    rouge = metrics.rouge_l(preds, refs)
                    bert = [0.3 + 0.6 * v for v in rouge["per_example"]]
                    path = folder / "score" / model / variant / decoding / f"rep{rep}.json"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    pd.DataFrame({"id": [r["id"] for r in tasks], "prediction": preds, "reference": refs,
                                  "bleu": bleu["per_example"], "rouge_l": rouge["per_example"],
                                  "bertscore_f1": bert, "new_tokens": [4] * len(tasks),
                                  "hit_max_new_tokens": [False] * len(tasks)}).to_csv(
                        per_example_path(path), index=False)
                    ScoreSummary(
                        model=model, variant=variant, decoding=decoding, replicate=rep, sweep=sweep,
                        settings=settings, generation_config=settings, inference=weights[(model, variant)],
                        n_examples=len(tasks), empty_predictions=0, hit_max_new_tokens=0, seed=42,
                        metrics={"bleu": {"score": bleu["score"], "signature": bleu["signature"]},
                                 "rouge_l": {"score": rouge["score"], "signature": rouge["signature"]},
                                 "bertscore_f1": {"score": sum(bert) / len(bert), "signature": "minilm-ish"}},
                        bertscore_settings={}, versions={"torch": "x"},
                    ).save(path)
                    summaries.append(path)
    perplexities = []
    for (model, variant), ppl in {("m1", "finetuned"): 8.0, ("m1", "base"): 300.0, ("m2", "finetuned"): 12.0,
                                  ("m2", "base"): 250.0}.items():
        tokens = [4 + (i % 5) for i in range(len(tasks))]
        nll = [t * math.log(ppl) * (0.8 + 0.4 * ((i * 13) % 7) / 6) for i, t in enumerate(tokens)]
        # the last of an example's tokens is its EOS: bits per byte and word perplexity leave its loss out
        nll_text = [n * (t - 1) / t for n, t in zip(nll, tokens)]
        path = folder / "perplexity" / model / f"{variant}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame({"id": [r["id"] for r in tasks], "nll": nll, "tokens": tokens, "nll_text": nll_text,
                              "bytes": [len(r["output"].encode()) for r in tasks],
                              "words": [len(r["output"].split()) for r in tasks]})
        table.to_csv(per_example_path(path), index=False)
        PerplexitySummary(
            model=model, variant=variant, perplexity=answer_nll.perplexity(table.nll, table.tokens),
            bits_per_byte=answer_nll.bits_per_byte(table.nll_text, table.bytes),
            word_perplexity=answer_nll.word_perplexity(table.nll_text, table.words),
            answer_tokens=int(table.tokens.sum()), answer_bytes=int(table.bytes.sum()),
            answer_words=int(table.words.sum()), examples_cut=0, answers_cut=0, bytes_cut=0, n_examples=len(tasks),
            signatures={"perplexity": "ppl", "bits_per_byte": "bpb", "word_perplexity": "wppl"},
            base_model=f"models/{model}", inference=weights[(model, variant)], model_source=None,
            adapter=None, seed=42, versions={"torch": "x"}, prompt_format="alpaca",
        ).save(path)
        perplexities.append(path)
    statistics = Statistics(confidence=0.95, resamples=500, max_resamples=2000, alpha=0.05, seed=1)
    return {"folder": folder, "test": folder / "test.jsonl", "summaries": summaries, "perplexities": perplexities,
            "statistics": statistics, "baseline": baseline}


@pytest.fixture(scope="session")
def cpu_load():
    """cpu_load(**fields) -> the Load (lmsweep.settings) of a model loaded plainly on the CPU, as trained."""
    from lmsweep.settings import Load, Quantization

    def make(**fields):
        quantization = Quantization(load_in_4bit=False, quant_type="nf4", double_quant=True, compute_dtype="float32")
        return Load(**{**dict(revision=None, snapshot=None, source=None, trust_remote_code=False,
                              quantization=quantization, weights="as_trained", merged_folder=False,
                              merged_from_4bit=False), **fields})

    return make


@pytest.fixture
def lmsweep_log(caplog):
    """lmsweep_log(level="INFO") -> the messages lmsweep's loggers said at that level or above, in order."""
    import logging

    caplog.set_level(logging.INFO, logger="lmsweep")

    def said(level: str = "INFO") -> list:
        return [r.getMessage() for r in caplog.records
                if r.name.startswith("lmsweep") and r.levelno >= logging.getLevelName(level)]

    return said


# --- running the suite in parallel (python -m pytest -n 3 --dist loadgroup tests) -----------------------------

# Tests go to the workers a file at a time (a file's module fixtures are made once). The tests that read the
# shared demo run as it is, or edit it and put it back (tests/workflow/conftest.py), stay on one worker, which
# makes that run; the reduced run is made once for every worker that needs it.
WORKFLOW_GROUPS = {"test_demo.py": "demo", "test_demo_report.py": "demo", "test_reruns.py": "demo",
                   "test_damaged_outputs.py": "demo"}


# The schedule: the longest chains first, so no worker starts one near the end. The SLURM file makes the reduced
# run, then the cluster's; the demo group makes the demo run; the files that read the reduced run come after a
# few long unit files, once it is there. Every other file follows in collection order.
FIRST = ["tests/workflow/test_slurm.py", "demo", "tests/workflow/test_demo_chat.py", "tests/test_faults.py", "tests/runtime/test_warm.py",
         "tests/steps/test_finetune.py", "tests/workflow/test_reproducibility.py",
         "tests/workflow/test_changes_run.py", "tests/workflow/test_offline.py"]


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "loadgroup":
        config.option.loadscopereorder = False  # xdist would order groups by their number of tests, not FIRST


def group_of(item) -> str:
    workflow = item.path.parent.name == "workflow" and item.path.name in WORKFLOW_GROUPS
    return WORKFLOW_GROUPS[item.path.name] if workflow else str(item.path.relative_to(item.config.rootpath))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under `--dist loadgroup`, each test's node id ends in `@<group>`, which xdist's scheduler reads. (xdist 3.8
    sets the suffix through an attribute pytest 9 no longer reads; this sets it as pytest 9 keeps node ids.)"""
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        if "@" not in item.nodeid.rsplit("::", 1)[-1]:
            item._id = coerce_node_id(f"{item.nodeid}@{group_of(item)}")
    rank = {group: n for n, group in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(group_of(item), len(FIRST)))  # stable: files keep their order

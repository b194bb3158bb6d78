"""Rule report: the study's questions answered in computed sentences, then the tables behind them.

Written as Markdown (plots beside it) and as one self-contained HTML file
(plots embedded) from the same blocks (lmsweep.document), from scores.csv,
comparisons.csv and the provenance records of each step (lmsweep.findings
makes the sentences and tables, lmsweep.plots the figures).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lmsweep import findings
from lmsweep.document import Document
from lmsweep.provenance import BERTSCORE_HASH_NOTE
from lmsweep.settings import Statistics
from lmsweep.vocabulary import LABELS, TEACHER_FORCED

log = logging.getLogger(__name__)

HOW_TO_READ = [
    "`24.1 [20.3, 28.0]`: the value, then its 95% interval over test examples (bootstrap: how much the number "
    "would move on other prompts like these).",
    "`±1.2`: where a config ran with several sampling seeds, the standard deviation of the value across seeds.",
    "`*`: significantly different from what it is compared with (paired test on the same examples, Holm-corrected "
    "over every comparison of the study); `=`: the two runs gave identical answers, so nothing was tested.",
    "BLEU (0-100), ROUGE-L F1 and BERTScore F1 (0-1): higher is better. Bits per byte, word perplexity and token "
    "perplexity of the reference answers: lower is better. Compare models on bits per byte or word perplexity: token "
    "perplexity counts in each model's own tokens, so it compares only the two variants of one model.",
    "`fine-tuned`: the base model with its LoRA adapter (the baseline adapter); `base`: the base model alone; an "
    "adaptation config's name (`r_32`): the adapter trained with that one setting moved from the baseline adapter's.",
]


# How the report names each prompt format (lmsweep.prompts).
PROMPT_FORMATS = {"alpaca": "in the Alpaca prompt template", "chat_template": "in the tokenizer's own chat template"}


@dataclass(frozen=True)
class Settings:
    dataset: str  # dataset.source, as the report names it
    baseline: dict  # the baseline decoding settings
    seed: int
    statistics: Statistics
    warm_start: bool
    sweep_parameters: list  # one plot each, as the rule declares them
    bertscore_rescaled: bool
    adaptations: dict = field(default_factory=dict)  # {adaptation config: [setting, value]} (lmsweep.adaptation)
    adaptation_decoding: list = field(default_factory=list)  # the decoding configs the swept adapters ran
    alpha_rule: str = "follows_rank"


@dataclass(frozen=True)
class Paths:
    checked: str
    test: str
    scores: str  # scores.csv
    comparisons: str
    manifest: str
    adapters: list
    summaries: list
    per_example: list
    perplexities: list
    generation_info: list
    benchmarks: list
    markdown: str
    html: str
    runtime: str
    plots: list
    cost: str
    losses: list = field(default_factory=list)  # every adapter's train_log.csv
    loss_plots: list = field(default_factory=list)  # one figure per model, as the rule declares them
    adaptation_plots: list = field(default_factory=list)  # quality against cost, with an adaptation sweep


def run(settings: Settings, paths: Paths, threads: int = 1) -> dict:
    from lmsweep.provenance import provenance
    from lmsweep.runs import load_runs

    record = provenance(paths.manifest, paths.adapters, paths.summaries, paths.generation_info, settings.dataset,
                        settings.baseline, settings.seed, asdict(settings.statistics), settings.warm_start,
                        paths.perplexities)
    runs = load_runs(paths.summaries, paths.test, settings.bertscore_rescaled)
    adapted = Adapted(settings.adaptations, settings.adaptation_decoding, settings.alpha_rule,
                      {Path(p).parent.name: p for p in paths.losses})
    built = build(paths.scores, paths.comparisons, record, Path(paths.html).parent, runs, paths.generation_info,
                  paths.benchmarks, settings.sweep_parameters, adapted)
    log.info(f"report written to {built['markdown']} and {built['html']}")
    return built


@dataclass(frozen=True)
class Adapted:
    """The adaptation sweep as the report shows it (lmsweep.adaptation)."""

    adaptations: dict  # {adaptation config: [setting, value]}
    decoding: list  # the decoding configs the swept adapters ran
    alpha_rule: str
    losses: dict  # {adapter name (<model> or <model>@<adaptation>): its train_log.csv}


def build(scores_csv, comparisons_csv, record: dict, out_dir, runs: dict | None = None, generation_info=(),
          benchmark_files=(), sweep_parameters=None, adapted: Adapted | None = None) -> dict:
    """Write report.md, report.html, runtime.csv and the plots to `out_dir`; return their paths."""
    adapted = adapted or Adapted({}, [], "follows_rank", {})

    from lmsweep import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from lmsweep.checks import read_csv_checked
    from lmsweep.provenance import read_generation_info

    scores = read_csv_checked(scores_csv, ["model", "variant", "decoding", "metric", "value", "ci_low", "ci_high"])
    comparisons = read_csv_checked(comparisons_csv, ["family", "metric", "in_holm_family", "p_value", "significant"])
    runs = runs or {}
    infos = read_generation_info(generation_info)
    baseline = record["baseline"]
    # The plots the rule declares: the config's sweeps (scores.csv holds the same, checked by aggregate).
    parameters = sorted(sweep_parameters if sweep_parameters is not None else scores.sweep_parameter.dropna().unique())
    doc = Document()

    models = sorted(scores.model.unique())
    configs = sorted(scores[scores.variant == "finetuned"].decoding.unique())
    doc.heading(1, "lmsweep report")
    formats = {m: record["models"].get(m, {}).get("prompt_format", "alpaca") for m in models}
    doc.paragraph(
        f"{len(models)} base models ({', '.join(models)}), each fine-tuned with a LoRA adapter on "
        f"`{record['dataset']}` ({record['n_train']} training records{_held_out(record)}, {record['dataset_form']} "
        f"form){_swept_text(adapted)} and decoded "
        f"under {len([c for c in configs if c != TEACHER_FORCED])} configs on {record['n_test']} held-out test "
        f"prompts; seed {record['seed']}. Prompts and answers are written "
        + "; ".join(f"{PROMPT_FORMATS[f]} for {', '.join(m for m in models if formats[m] == f)}"
                    for f in sorted(set(formats.values()))) + " (models.<name>.prompt_format)."
    )
    doc.heading(3, "How to read this report")
    doc.bullets(HOW_TO_READ)
    doc.paragraph(findings.holm_bar(comparisons, record["statistics"]["alpha"],
                                    record["n_test"]))
    warnings = findings.study_warnings(record, scores, comparisons, infos)
    if warnings:
        doc.heading(3, "Read these numbers with care")
        doc.bullets(warnings)

    doc.heading(2, "The answers")
    doc.heading(3, "Which model is best (fine-tuned, baseline decoding)")
    doc.bullets(findings.best_model_sentences(scores, comparisons))
    doc.paragraph(findings.rankings_agree(scores))
    if parameters:
        doc.heading(3, "How each decoding parameter matters")
        doc.paragraph("Each value is tested against the baseline config (`*` in the sweep tables below). The best "
                      "value of a sweep is picked on these same data, so its differences from the other values are "
                      "given as intervals only, not as tests: a test against a value chosen for being best would "
                      "find it better too often.")
        for parameter in parameters:
            doc.paragraph(f"**{parameter}** (the other settings at the baseline, {_settings_text(baseline)}):")
            doc.bullets(findings.sweep_sentences(scores, comparisons, parameter, baseline.get(parameter)))
            if parameter == "num_beams" and baseline.get("do_sample"):
                doc.paragraph("The num_beams configs keep the baseline's `do_sample: true`: they are beam sampling, "
                              "not beam search. Beam search is a config with `do_sample: false` (see config.yaml).")
    if adapted.adaptations:
        _adaptation_answers(doc, scores, comparisons, record, adapted)
    doc.heading(3, "What fine-tuning bought")
    doc.bullets(findings.gain_sentences(comparisons))
    doc.heading(3, "Do the metrics agree")
    doc.paragraph(findings.disagreements(scores))

    doc.heading(2, "Model comparison (fine-tuned, baseline decoding)")
    doc.table(findings.model_table(scores, comparisons),
              "(#1) is the best rank for that metric. Token perplexity is in each model's own tokens: do not rank "
              "models with different tokenizers on it.")
    doc.paragraph("Differences between models, B − A, paired on the same test examples:")
    doc.table(findings.model_pair_table(scores, comparisons), "* significant after Holm; = identical answers.")

    doc.heading(2, "What fine-tuning bought (base model vs. adapter, baseline decoding)")
    doc.table(findings.gain_table(scores, comparisons),
              "improvement: fine-tuned against base, signed so that positive is better for every metric; "
              "ratio: fine-tuned / base.")

    plot_paths = {}
    for parameter in parameters:
        doc.heading(2, f"Decoding sweep: {parameter}")
        path = out_dir / f"sweep_{parameter}.png"
        plots.plot_sweep(scores, parameter, baseline.get(parameter), path)
        plot_paths[parameter] = path
        doc.image(path, f"sweep of {parameter}")
        doc.table(findings.sweep_table(scores, comparisons, parameter, baseline.get(parameter)),
                  "* significantly different from the baseline config (Holm); = identical answers to the baseline.")

    doc.heading(2, "Metric agreement")
    pooled = findings.pooled_examples(runs)
    doc.table(findings.agreement_table(scores, pooled),
              "Rank correlation between metrics: across all runs (every model, variant and config), and per "
              "test example pooled over all runs. 1 = the same order, 0 = unrelated.")

    doc.heading(2, "Examples: baseline config against each model's best config")
    for model, (best, examples) in findings.example_pairs(runs, scores).items():
        if not examples:
            doc.paragraph(f"**{model}**: its best config is the baseline itself.")
            continue
        doc.paragraph(f"**{model}**: best config `{best}` (best mean rank over BLEU, ROUGE-L and BERTScore). "
                      "The test examples whose BERTScore F1 differs most between the two:")
        doc.table(findings.examples_frame(examples))

    doc.heading(2, "Answer hygiene")
    doc.table(findings.hygiene_table(scores),
              "Shares of answers that are empty, that stopped at max_new_tokens before their end, and the mean "
              "share of an answer's word 3-grams that repeat an earlier one (degenerate loops).")

    doc.heading(2, "Cost against quality")
    cost_path = out_dir / "cost.png"
    if infos:
        plots.plot_cost(scores, infos, cost_path)
        doc.image(cost_path, "cost against quality")
    doc.table(findings.cost_table(scores, infos),
              "Generation time is measured inside each generate job (model loading excluded), so it is exact "
              "under warm_start too.")

    if adapted.adaptations:
        _adaptation_section(doc, scores, comparisons, record, adapted, out_dir)

    doc.heading(2, "Training")
    for model in models:
        path = out_dir / f"loss_{model}.png"
        plots.plot_loss_curves(adapted.losses, model, path)
        doc.image(path, f"loss curves of {model}'s adapters")
    doc.table(findings.training_table(record["adapters"]),
              "An adapter's name is its model's, then @ and its adaptation config for a swept one. Validation loss: "
              "on training.validation_size records held out of the training split (never the test split).")

    runtime = findings.runtime_table(benchmark_files)
    runtime.to_csv(out_dir / "runtime.csv", index=False)
    doc.heading(2, "Runtime")
    doc.paragraph(
        "Wall time, peak memory (MB) and CPU time from Snakemake's benchmark files (all jobs in runtime.csv)."
        + (" This run used warm_start: memory and CPU count the job's launcher only, not the forked worker; "
           "wall time is exact." if record.get("warm_start") else "")
    )
    doc.table(findings.runtime_summary(runtime))

    doc.heading(2, "Where the numbers come from")
    doc.paragraph("Decoding configs as they ran. Every generation used a generation config built by lmsweep: "
                  "transformers' defaults, then these settings (not a model folder's own decoding defaults, unless "
                  "`decoding_defaults: model`); the complete effective configuration is in the provenance below and "
                  "in every line of the predictions files. Random streams: per-example (each test example samples "
                  "from its own seeded stream: answers do not depend on the batch), per-batch (beam sampling: "
                  "seeded per batch), none (greedy or beam search).")
    doc.table(findings.decoding_table(record))
    doc.paragraph(findings.batch_dependence_note(record))
    doc.bullets(findings.overridden_notes(record))
    if "weights" in scores and scores.weights.notna().any():
        doc.paragraph("Weights behind the numbers (inference.weights): as trained (the base as training saw it, "
                      "4-bit or full precision, with the adapter beside it) or merged (the adapter merged into the "
                      "base, dequantized first when it was 4-bit), for the generated answers and for perplexity.")
        doc.table(findings.weights_table(scores))
    doc.paragraph("Metric signatures:")
    signatures = [f"{LABELS.get(k, k)}: `{v}`" for k, v in sorted(record["metric_signatures"].items())]
    if "bertscore_f1" in record["metric_signatures"]:
        signatures.append(BERTSCORE_HASH_NOTE)
    doc.bullets(signatures)
    stats = record.get("statistics") or {}
    if stats:
        doc.paragraph(f"Statistics: {stats.get('confidence', 0.95):.0%} intervals from {stats.get('resamples')} "
                      f"bootstrap resamples, seed {stats.get('seed')}; significance level {stats.get('alpha')} after "
                      f"Holm's correction over the m = {findings.holm_family_size(comparisons)} paired tests; "
                      f"Monte-Carlo p-values redrawn with up to {stats.get('max_resamples')} resamples where that "
                      "could decide them. How each p-value was made (the `test` column of comparisons.csv): "
                      + "; ".join(sorted({findings.test_kind(t) for t in comparisons.test.dropna()})) + ".")
    doc.paragraph("All provenance:")
    doc.code(json.dumps(record, indent=2, sort_keys=True, default=str))

    (out_dir / "report.md").write_text(doc.markdown())
    (out_dir / "report.html").write_text(doc.html())
    return {"markdown": out_dir / "report.md", "html": out_dir / "report.html", "plots": plot_paths,
            "runtime": out_dir / "runtime.csv"}


def _held_out(record: dict) -> str:
    held = {(m.get("validation") or {}).get("records", 0) for m in record["adapters"].values()}
    return f", {max(held)} of them held out for the validation loss" if max(held, default=0) else ""


def _swept_text(adapted: Adapted) -> str:
    if not adapted.adaptations:
        return ""
    swept = sorted({name.split("@", 1)[0] for name in adapted.losses if "@" in name})
    return (f", {', '.join(swept)} also with {len(adapted.adaptations)} more adapters, one adaptation setting moved "
            f"in each ({', '.join(f'`{n}`' for n in adapted.adaptations)})")


def _adaptation_answers(doc, scores, comparisons, record, adapted: Adapted) -> None:
    """'How each adaptation setting matters': per setting, the sentences (baseline decoding)."""
    decoding = "baseline" if "baseline" in adapted.decoding else adapted.decoding[0]
    doc.heading(3, "How each adaptation setting matters (adapted how)")
    doc.paragraph(
        "Each adaptation config trains one more adapter per swept model, the baseline adapter (`finetuned`: the lora, "
        "training and quantization sections) with one setting moved; it is generated under "
        f"{', '.join(f'`{d}`' for d in adapted.decoding)} and teacher forced for bits per byte. Every difference is "
        "against the model's baseline adapter on the same test examples, tested and Holm-corrected with every other "
        f"test of the study (`*`); text metrics under `{decoding}` decoding."
        + (" A swept rank keeps the baseline's LoRA scale: alpha = baseline alpha × r / baseline r "
           "(adaptation.alpha: follows_rank)." if adapted.alpha_rule == "follows_rank" and any(
               p == "r" for p, _ in adapted.adaptations.values()) else ""))
    for parameter, names in findings.by_parameter(adapted.adaptations).items():
        doc.paragraph(f"**{parameter}**:")
        doc.bullets(findings.adaptation_sentences(scores, comparisons, record, parameter, names, decoding))


def _adaptation_section(doc, scores, comparisons, record, adapted: Adapted, out_dir) -> None:
    """The adaptation sweep's tables, what each adapter cost, and quality against cost."""
    from lmsweep import plots

    for decoding in adapted.decoding:
        for parameter, names in findings.by_parameter(adapted.adaptations).items():
            doc.heading(2, f"Adaptation sweep: {parameter} ({decoding} decoding)")
            doc.table(findings.adaptation_table(scores, comparisons, record, parameter, names, decoding),
                      "* significantly different from the model's baseline adapter (Holm); = identical answers. "
                      "Bits per byte: teacher forced on the reference answers.")
    doc.heading(2, "What each adapter cost")
    path = out_dir / "adaptation_cost.png"
    plots.plot_adaptation_cost(scores, record, path)
    doc.image(path, "quality against each adapter's training cost")
    doc.table(findings.adapter_cost_table(scores, record),
              "Trainable parameters: LoRA's, with any modules trained in full. Training seconds: the Trainer's "
              "train() in the finetune job (GPU-seconds: times the training processes); peak GPU memory: the job's "
              "first process; size: the adapter's weights file.")


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))

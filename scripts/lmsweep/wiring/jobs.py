"""Each rule's jobs: its wildcards, and the typed settings and paths of one job from the study and them.

The rules (rules/*.smk, through rules/common.smk) and a step run by hand
(lmsweep.runtime.cli) both build a job here, so the two cannot drift apart.
The Settings and Paths classes are the step's own (lmsweep.steps.<rule>);
building them lives here, apart from the step's code, so that a change of
the wiring reruns nothing by itself (lmsweep.codedigest digests a step's
code, not this): a job reruns when what it is given changes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable

from lmsweep import settings as s
from lmsweep.adaptation import SEPARATOR
from lmsweep.sources import is_local
from lmsweep.wiring import layout as L

RUN_WILDCARDS = ("model", "variant", "decoding", "rep")


def _step(rule: str):
    from importlib import import_module

    return import_module(f"lmsweep.steps.{rule}")


def _run(wc) -> dict:
    return dict(model=wc.model, variant=wc.variant, decoding=wc.decoding, rep=wc.rep)


# --- settings and paths, rule by rule ------------------------------------------------------------------------

def _prepare_data(study, wc):
    return _step("prepare_data").Settings(dataset=s.from_mapping(s.Dataset, study.config["dataset"], "dataset"),
                                          seed=study.config["seed"])


def dataset_input(config: dict) -> list:
    """dataset.source when it is a local file (an input: its content is the data), else nothing."""
    source = config["dataset"]["source"]
    return [os.path.expanduser(source)] if source != "synthetic" and is_local(source) else []


def _prepare_data_paths(study, wc):
    return _step("prepare_data").Paths(source=dataset_input(study.config), **L.SPLIT)


def _build_tiny_model(study, wc):
    return _step("build_tiny_model").Settings(build=study.build(wc.model), seed=study.config["seed"])


def _build_tiny_model_paths(study, wc):
    return _step("build_tiny_model").Paths(train=L.SPLIT["train"], model=L.BUILT.format(model=wc.model))


def _convert_gguf(study, wc):
    return _step("convert_gguf").Settings(model=wc.model, gguf=study.gguf(wc.model))


def _convert_gguf_paths(study, wc):
    return _step("convert_gguf").Paths(gguf=study.gguf_file(wc.model), model=L.CONVERTED.format(model=wc.model))


def _adaptation(wc) -> str | None:
    """The adaptation config of a finetune or merge_adapter job ('@r_4' -> 'r_4'), None for the baseline adapter."""
    return wc.adaptation.removeprefix(SEPARATOR) or None


def _trained(wc) -> dict:
    return dict(model=wc.model, adaptation=wc.adaptation)


def _finetune(study, wc):
    adaptation = _adaptation(wc)
    return _step("finetune").Settings(
        model=wc.model, base_model=study.base_model(wc.model), load=study.load(wc.model, adaptation),
        lora=study.lora(wc.model, adaptation), training=study.training(wc.model, adaptation),
        seed=study.config["seed"], device=study.config["device"], checkpoints=L.CHECKPOINTS.format(**_trained(wc)),
        processes=study.training_processes(), prompt_format=study.prompt_format(wc.model), adaptation=adaptation)


def _finetune_paths(study, wc):
    return _step("finetune").Paths(train=L.SPLIT["train"], base=study.base_model_input(wc.model),
                                   adapter=L.ADAPTER.format(**_trained(wc)), loss=L.LOSS.format(**_trained(wc)))


def _merge_adapter(study, wc):
    return _step("merge_adapter").Settings(model=wc.model, base_model=study.base_model(wc.model),
                                           load=study.load(wc.model, _adaptation(wc)), seed=study.config["seed"],
                                           device=study.config["device"])


def _merge_adapter_paths(study, wc):
    return _step("merge_adapter").Paths(base=study.base_model_input(wc.model),
                                        adapter=L.ADAPTER.format(**_trained(wc)),
                                        merged=L.MERGED.format(**_trained(wc)))


def _generate(study, wc):
    return _step("generate").Settings(
        labels=study.labels(wc), base_model=study.inference_model(wc), load=study.inference_load(wc),
        decoding=s.Decoding(settings=study.decoding[wc.decoding],
                            defaults=study.config["models"][wc.model]["decoding_defaults"],
                            sweep=study.moved.get(wc.decoding)),
        batch_size=study.config["generation"]["batch_size"], seed=study.config["seed"],
        device=study.config["device"], prompt_format=study.prompt_format(wc.model))


def _generate_paths(study, wc):
    inputs = study.inference_inputs(wc)
    return _step("generate").Paths(test=L.SPLIT["test"], base=inputs["base"], adapter=inputs.get("adapter", []),
                                   predictions=L.PREDICTIONS.format(**_run(wc)),
                                   info=L.GENERATION_INFO.format(**_run(wc)))


def _score(study, wc):
    scoring = study.config["scoring"]
    return _step("score").Settings(
        labels=study.labels(wc), bleu=study.bleu(), rouge=s.from_mapping(s.Rouge, scoring["rouge"], "scoring.rouge"),
        bertscore=s.from_mapping(s.BertScore, scoring["bertscore"], "scoring.bertscore"),
        seed=study.config["seed"], device=study.config["device"])


def _score_paths(study, wc):
    return _step("score").Paths(predictions=L.PREDICTIONS.format(**_run(wc)), test=L.SPLIT["test"],
                                summary=L.SCORE.format(**_run(wc)), per_example=L.SCORE_EXAMPLES.format(**_run(wc)))


def _perplexity(study, wc):
    return _step("perplexity").Settings(
        model=wc.model, variant=wc.variant, base_model=study.inference_model(wc), load=study.inference_load(wc),
        batch_size=study.config["scoring"]["perplexity"]["batch_size"], seed=study.config["seed"],
        device=study.config["device"], prompt_format=study.prompt_format(wc.model))


def _perplexity_paths(study, wc):
    inputs = study.inference_inputs(wc)
    return _step("perplexity").Paths(
        test=L.SPLIT["test"], base=inputs["base"], adapter=inputs.get("adapter", []),
        summary=L.PERPLEXITY.format(model=wc.model, variant=wc.variant),
        per_example=L.PERPLEXITY_EXAMPLES.format(model=wc.model, variant=wc.variant))


def _check_scores(study, wc):
    return _step("check_scores").Settings(bertscore_rescaled=study.bertscore_rescaled())


def _check_scores_paths(study, wc):
    return _step("check_scores").Paths(**study.score_inputs(), checked=L.CHECKED)


def _tables(rule):
    def settings(study, wc):
        return _step(rule).Settings(bleu=study.bleu(), statistics=study.statistics(),
                                    bertscore_rescaled=study.bertscore_rescaled())
    return settings


def _aggregate_paths(study, wc):
    return _step("aggregate").Paths(checked=L.CHECKED, **study.score_inputs(), table=L.SCORES)


def _compare_paths(study, wc):
    return _step("compare").Paths(checked=L.CHECKED, **study.score_inputs(), table=L.COMPARISONS)


def _report(study, wc):
    c = study.config
    return _step("report").Settings(
        dataset=c["dataset"]["source"], baseline=c["decoding"]["baseline"], seed=c["seed"],
        statistics=study.statistics(), warm_start=c["warm_start"], sweep_parameters=list(c["decoding"]["sweep"]),
        bertscore_rescaled=study.bertscore_rescaled(),
        adaptations={name: [parameter, value] for name, (parameter, value) in study.adaptations.items()},
        adaptation_decoding=list(c["adaptation"]["decoding"]) if study.adaptations else [],
        alpha_rule=c["adaptation"]["alpha"])


def _report_paths(study, wc):
    return _step("report").Paths(
        **study.report_inputs(), markdown=f"{L.REPORT}/report.md", html=f"{L.REPORT}/report.html",
        runtime=f"{L.REPORT}/runtime.csv", plots=list(study.sweep_plots().values()), cost=f"{L.REPORT}/cost.png",
        loss_plots=list(study.loss_plots().values()), adaptation_plots=list(study.adaptation_plots().values()))


def _prefetch(study, wc):
    from lmsweep.hubcache import needs

    return _step("prefetch").Settings(needed=[asdict(item) for item in needs(study.config)],
                                      hf_home=study.config.get("hf_home"), list_only=False)


def _prefetch_paths(study, wc):
    return _step("prefetch").Paths()


@dataclass(frozen=True)
class Wiring:
    """One rule's jobs: the wildcards that name one, and how its settings and paths are built."""

    wildcards: tuple
    settings: Callable
    paths: Callable


JOBS = {
    "prepare_data": Wiring((), _prepare_data, _prepare_data_paths),
    "build_tiny_model": Wiring(("model",), _build_tiny_model, _build_tiny_model_paths),
    "convert_gguf": Wiring(("model",), _convert_gguf, _convert_gguf_paths),
    "finetune": Wiring(("model", "adaptation"), _finetune, _finetune_paths),
    "merge_adapter": Wiring(("model", "adaptation"), _merge_adapter, _merge_adapter_paths),
    "generate": Wiring(RUN_WILDCARDS, _generate, _generate_paths),
    "score": Wiring(RUN_WILDCARDS, _score, _score_paths),
    "perplexity": Wiring(("model", "variant"), _perplexity, _perplexity_paths),
    "check_scores": Wiring((), _check_scores, _check_scores_paths),
    "aggregate": Wiring((), _tables("aggregate"), _aggregate_paths),
    "compare": Wiring((), _tables("compare"), _compare_paths),
    "report": Wiring((), _report, _report_paths),
    "prefetch": Wiring((), _prefetch, _prefetch_paths),
}

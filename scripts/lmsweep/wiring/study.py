"""One checked config as a study: what it plans (models, decoding configs, runs) and the pieces of settings
its jobs share (how a model loads, its LoRA and training settings, the statistics)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from lmsweep import settings as s
from lmsweep.settings import as_mapping as as_dict
from lmsweep.wiring.layout import (
    ADAPTER, BUILT, CHECKED, COMPARISONS, CONVERTED, GENERATION_INFO, LOSS, MERGED, PERPLEXITY, PERPLEXITY_EXAMPLES,
    REPORT, SCORE, SCORE_EXAMPLES, SCORES, SPLIT, VARIANTS,
)

@dataclass(frozen=True)
class Wildcards:
    """A job's wildcards, as Snakemake gives them (strings), for the functions below."""

    model: str = ""
    adaptation: str = ""  # finetune and merge_adapter: '' (the baseline adapter) or '@<adaptation name>'
    variant: str = ""
    decoding: str = ""
    rep: str = "0"


class Study:
    """One checked config: what it plans, and each job's paths and settings."""

    def __init__(self, config: dict):
        self.config = config
        self._sources = {}

    # --- what the study plans ------------------------------------------------------------------------------

    @cached_property
    def decoding(self) -> dict:
        """{config name: generate() settings}: the baseline, each swept value, the named extras."""
        from lmsweep.decoding import expand

        return expand(self.config["decoding"])

    @cached_property
    def moved(self) -> dict:
        """{config name: [parameter, value]} of each swept config."""
        from lmsweep.decoding import moved_parameters

        return moved_parameters(self.config["decoding"])

    @property
    def models(self) -> list:
        return list(self.config["models"])

    @cached_property
    def adaptations(self) -> dict:
        """{adaptation name: (setting, value)} of each swept adapter (lmsweep.adaptation); the baseline is not one."""
        from lmsweep.adaptation import expand

        return expand(self.config["adaptation"]["sweep"])

    @property
    def variants(self) -> list:
        """finetuned (the baseline adapter), base (no adapter), and each adaptation config."""
        return [*VARIANTS, *self.adaptations]

    def swept(self, model: str) -> list:
        """The adaptation configs a model trains: every one, unless adaptation.models leaves the model out."""
        chosen = self.config["adaptation"]["models"]
        return list(self.adaptations) if chosen is None or model in chosen else []

    def adapted(self, model: str) -> list:
        """The variants of a model that have an adapter: finetuned and its adaptation configs."""
        return ["finetuned", *self.swept(model)]

    def each_adapter(self, pattern: str) -> list:
        """`pattern` (with {model} and {adaptation}) for every adapter of the study."""
        from lmsweep.adaptation import folder_part

        return [pattern.format(model=m, adaptation=folder_part(v)) for m in self.models for v in self.adapted(m)]

    def replicates(self, decoding: str) -> int:
        """Seed replicates of a decoding config: sampled configs get generation.replicates, the rest 1."""
        return self.config["generation"]["replicates"] if self.decoding[decoding]["do_sample"] else 1

    def runs(self):
        """(model, variant, decoding, replicate) of every generation the study makes."""
        for model, entry in self.config["models"].items():
            swept = [(name, self.config["adaptation"]["decoding"]) for name in self.swept(model)]
            for variant, decodings in (("finetuned", self.decoding), ("base", entry["base_decoding"]), *swept):
                for decoding in decodings:
                    for rep in range(self.replicates(decoding)):
                        yield model, variant, decoding, rep

    def each_run(self, pattern: str) -> list:
        return [pattern.format(model=m, variant=v, decoding=d, rep=r) for m, v, d, r in self.runs()]

    def each_model(self, pattern: str, variants=None) -> list:
        return [pattern.format(model=m, variant=v) for m in self.models
                for v in (variants if variants is not None else [*VARIANTS, *self.swept(m)])]

    def benchmarks(self) -> list:
        """The benchmark files of every heavy job: the report's runtime table."""
        files = self.each_adapter("benchmarks/finetune/{model}{adaptation}.tsv")
        if self.merged_inference:
            files += self.each_adapter("benchmarks/merge_adapter/{model}{adaptation}.tsv")
        files += [f"benchmarks/{step}/{m}/{v}/{d}/rep{r}.tsv" for m, v, d, r in self.runs()
                  for step in ("generate", "score")]
        files += self.each_model("benchmarks/perplexity/{model}/{variant}.tsv")
        return files

    def score_inputs(self) -> dict:
        """Every score and perplexity file of the study, with the test split: what the tables are made from."""
        return {"test": SPLIT["test"], "scores": self.each_run(SCORE), "per_example": self.each_run(SCORE_EXAMPLES),
                "perplexities": self.each_model(PERPLEXITY), "perplexity_examples": self.each_model(PERPLEXITY_EXAMPLES)}

    def report_inputs(self) -> dict:
        """What the report reads: the tables, the split's manifest, every step's records, the benchmarks."""
        inputs = self.score_inputs()
        return {"checked": CHECKED, "test": inputs["test"], "scores": SCORES, "comparisons": COMPARISONS,
                "manifest": SPLIT["manifest"], "adapters": self.each_adapter(ADAPTER),
                "losses": self.each_adapter(LOSS),
                "summaries": inputs["scores"], "per_example": inputs["per_example"],
                "perplexities": inputs["perplexities"], "generation_info": self.each_run(GENERATION_INFO),
                "benchmarks": self.benchmarks()}

    def sweep_plots(self) -> dict:
        """{parameter: the report's plot of its sweep}."""
        return {parameter: f"{REPORT}/sweep_{parameter}.png" for parameter in self.config["decoding"]["sweep"]}

    def loss_plots(self) -> dict:
        """{model: the report's figure of its adapters' training and validation loss curves}."""
        return {model: f"{REPORT}/loss_{model}.png" for model in self.models}

    def adaptation_plots(self) -> dict:
        """{'cost': the report's plot of quality against each adapter's cost}, with an adaptation sweep only."""
        return {"cost": f"{REPORT}/adaptation_cost.png"} if self.adaptations else {}

    @property
    def merged_inference(self) -> bool:
        return self.config["inference"]["weights"] == "merged"

    # --- models --------------------------------------------------------------------------------------------

    def is_built(self, model: str) -> bool:
        return "build" in self.config["models"][model]

    def made_folder(self, model: str) -> str | None:
        """The model folder a rule of the workflow makes (build_tiny_model, convert_gguf), or None."""
        entry = self.config["models"][model]
        if "build" in entry:
            return BUILT.format(model=model)
        if "gguf" in entry:
            return CONVERTED.format(model=model)
        return None

    def base_model(self, model: str) -> str:
        """The folder or Hub id a model loads from."""
        return self.made_folder(model) or self.config["models"][model]["name_or_path"]

    def base_model_input(self, model: str) -> list:
        """The model folder the workflow makes, as an input; nothing for a Hub model or a folder of the user's."""
        return [self.made_folder(model)] if self.made_folder(model) else []

    def gguf(self, model: str) -> s.Gguf:
        return s.from_mapping(s.Gguf, self.config["models"][model]["gguf"], f"models.{model}.gguf")

    def gguf_file(self, model: str) -> str:
        """The GGUF file a model entry names, a package:<module>/<file> resolved to the installed file."""
        from lmsweep.sources import gguf_path

        return gguf_path(self.gguf(model).file)

    def merged(self, wc) -> bool:
        """Whether a generate or perplexity job reads the merged model (inference.weights: merged)."""
        return self.merged_inference and wc.variant != "base"

    @staticmethod
    def trained(pattern: str, model: str, variant: str) -> str:
        """ADAPTER, MERGED, ... of one model's adapter of `variant` (finetuned or an adaptation config)."""
        from lmsweep.adaptation import folder_part

        return pattern.format(model=model, adaptation=folder_part(variant))

    @staticmethod
    def adaptation_of(variant: str) -> str | None:
        """The adaptation config of a variant: None for finetuned (the baseline adapter) and base."""
        return None if variant in VARIANTS else variant

    def inference_inputs(self, wc) -> dict:
        """The model files a generate or perplexity job reads: the merged model, or the base and the adapter."""
        if self.merged(wc):
            return {"base": self.trained(MERGED, wc.model, wc.variant)}
        return {"base": self.base_model_input(wc.model),
                "adapter": self.trained(ADAPTER, wc.model, wc.variant) if wc.variant != "base" else []}

    def inference_model(self, wc) -> str:
        return self.trained(MERGED, wc.model, wc.variant) if self.merged(wc) else self.base_model(wc.model)

    def model_source(self, model: str):
        """A fingerprint of a local model folder, or the cached Hub snapshot's commit (lmsweep.modelsource).

        Read once per model when the workflow is read: a change of either reruns the model's jobs.
        """
        if model not in self._sources:
            from lmsweep.modelsource import describe

            entry = self.config["models"][model]
            self._sources[model] = None if self.made_folder(model) else describe(
                entry["name_or_path"], entry.get("revision"), self.config.get("hf_home"))
        return self._sources[model]

    def sections(self, model: str, adaptation: str | None = None) -> dict:
        """{lora, training, quantization} of one adapter: the baseline's, or one setting moved (lmsweep.adaptation)."""
        from lmsweep.adaptation import sections

        return sections(self.config, model, adaptation)

    def quantization(self, model: str | None = None, adaptation: str | None = None) -> s.Quantization:
        section = self.sections(model, adaptation)["quantization"] if model else self.config["quantization"]
        return s.from_mapping(s.Quantization, section, "quantization")

    def load(self, model: str, adaptation: str | None = None) -> s.Load:
        """How to load one model as training saw it: everything that changes its weights on load."""
        entry, source = self.config["models"][model], self.model_source(model)
        return s.Load(revision=entry.get("revision"), snapshot=(source or {}).get("commit"), source=source,
                      trust_remote_code=entry["trust_remote_code"], quantization=self.quantization(model, adaptation),
                      weights="as_trained", merged_folder=False, merged_from_4bit=False)

    def inference_load(self, wc) -> s.Load:
        """How a generate or perplexity job loads its model, and which weights make its numbers."""
        load = self.load(wc.model, self.adaptation_of(wc.variant))
        weights = self.config["inference"]["weights"]
        if self.merged(wc):
            # The merged folder holds plain weights in the compute dtype: loaded as they are.
            return s.Load(revision=None, snapshot=None, source=load.source, trust_remote_code=load.trust_remote_code,
                          quantization=s.Quantization(**{**as_dict(load.quantization), "load_in_4bit": False}),
                          weights=weights, merged_folder=True, merged_from_4bit=load.quantization.load_in_4bit)
        return s.Load(**{**load.__dict__, "weights": weights})

    def lora(self, model: str, adaptation: str | None = None) -> s.Lora:
        return s.from_mapping(s.Lora, self.sections(model, adaptation)["lora"], f"models.{model}.lora")

    def training(self, model: str, adaptation: str | None = None) -> s.Training:
        return s.from_mapping(s.Training, self.sections(model, adaptation)["training"], f"models.{model}.training")

    def build(self, model: str) -> s.Build:
        return s.from_mapping(s.Build, self.config["models"][model]["build"], f"models.{model}.build")

    # --- resources -----------------------------------------------------------------------------------------

    def resource(self, rule: str, key: str, default):
        return self.config["resources"].get(rule, {}).get(key, default)

    @property
    def gpus(self) -> int:
        return self.config["resources"]["gpu_per_job"]

    def training_gpus(self) -> int:
        """GPUs of one finetune job: resources.finetune.gpus, by default resources.gpu_per_job."""
        return self.resource("finetune", "gpus", self.gpus)

    def prompt_format(self, model: str) -> str:
        """alpaca or chat_template (lmsweep.prompts): how this model's prompts and answers are written."""
        return self.config["models"][model]["prompt_format"]

    def training_processes(self) -> int:
        """Training processes of one finetune job (one per GPU); part of what identifies the adapter."""
        return max(1, self.training_gpus())

    # --- each rule's settings ------------------------------------------------------------------------------

    def labels(self, wc) -> s.RunLabels:
        return s.RunLabels(model=wc.model, variant=wc.variant, decoding=wc.decoding, replicate=int(wc.rep))

    def bleu(self) -> s.Bleu:
        return s.from_mapping(s.Bleu, self.config["scoring"]["bleu"], "scoring.bleu")

    def statistics(self) -> s.Statistics:
        return s.from_mapping(s.Statistics, self.config["statistics"], "statistics")

    def bertscore_rescaled(self) -> bool:
        return self.config["scoring"]["bertscore"]["rescale_with_baseline"]

    def settings(self, rule: str, wc=None):
        """The typed settings of one job of `rule` (its step module's Settings)."""
        from lmsweep.wiring.jobs import JOBS

        return JOBS[rule].settings(self, wc or Wildcards())

    def paths(self, rule: str, wc=None):
        """The paths of one job of `rule`, as the rule names them (its step module's Paths)."""
        from lmsweep.wiring.jobs import JOBS

        return JOBS[rule].paths(self, wc or Wildcards())

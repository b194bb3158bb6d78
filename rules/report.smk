# Every score and perplexity file checked before aggregate and compare run: Snakemake removes a job's old
# outputs before the job starts, so a damaged file found by aggregate itself would cost scores.csv its numbers.
rule check_scores:
    input:
        test="results/prepare_data/test.jsonl",
        scores=all_scores(),
        per_example=all_per_example(),
        perplexities=all_perplexities(),
        perplexity_examples=all_perplexity_examples(),
    output:
        "results/check_scores/checked.json",
    log:
        "logs/check_scores/check_scores.log",
    conda:
        "../envs/report.yaml"
    params:
        code=code_of("check_scores"),
        bertscore_rescaled=config["scoring"]["bertscore"]["rescale_with_baseline"],
    script:
        "../scripts/check_scores.py"


rule aggregate:
    input:
        checked="results/check_scores/checked.json",
        test="results/prepare_data/test.jsonl",
        scores=all_scores(),
        per_example=all_per_example(),
        perplexities=all_perplexities(),
        perplexity_examples=all_perplexity_examples(),
    output:
        report(
            "results/scores.csv",
            caption="../reports/scores.rst",
            category="Scores",
        ),
    log:
        "logs/aggregate/aggregate.log",
    conda:
        "../envs/report.yaml"
    params:
        code=code_of("aggregate"),
        bleu=config["scoring"]["bleu"],
        bertscore_rescaled=config["scoring"]["bertscore"]["rescale_with_baseline"],
        statistics=config["statistics"],
    script:
        "../scripts/aggregate.py"


rule compare:
    input:
        checked="results/check_scores/checked.json",
        test="results/prepare_data/test.jsonl",
        scores=all_scores(),
        per_example=all_per_example(),
        perplexities=all_perplexities(),
        perplexity_examples=all_perplexity_examples(),
    output:
        report(
            "results/comparisons.csv",
            caption="../reports/comparisons.rst",
            category="Scores",
        ),
    log:
        "logs/compare/compare.log",
    conda:
        "../envs/report.yaml"
    params:
        code=code_of("compare"),
        bleu=config["scoring"]["bleu"],
        bertscore_rescaled=config["scoring"]["bertscore"]["rescale_with_baseline"],
        statistics=config["statistics"],
    script:
        "../scripts/compare.py"


rule report:
    input:
        checked="results/check_scores/checked.json",
        test="results/prepare_data/test.jsonl",
        scores="results/scores.csv",
        comparisons="results/comparisons.csv",
        manifest="results/prepare_data/manifest.json",
        adapters=expand("results/finetune/{model}/adapter", model=config["models"]),
        summaries=all_scores(),
        per_example=all_per_example(),
        perplexities=all_perplexities(),
        generation_info=all_generation_info(),
        benchmarks=all_benchmarks(),
    output:
        markdown="results/report/report.md",
        html=report(
            "results/report/report.html",
            caption="../reports/report.rst",
            category="Scores",
        ),
        runtime=report(
            "results/report/runtime.csv",
            caption="../reports/runtime.rst",
            category="Runtime",
        ),
        plots=[
            report(
                f"results/report/sweep_{parameter}.png",
                caption="../reports/sweep.rst",
                category="Sweeps",
                labels={"parameter": parameter},
            )
            for parameter in config["decoding"]["sweep"]
        ],
        cost=report(
            "results/report/cost.png",
            caption="../reports/cost.rst",
            category="Runtime",
        ),
    log:
        "logs/report/report.log",
    conda:
        "../envs/report.yaml"
    params:
        code=code_of("report"),
        dataset=config["dataset"],
        baseline=config["decoding"]["baseline"],
        seed=config["seed"],
        statistics=config["statistics"],
        warm_start=config["warm_start"],
        sweep_parameters=list(config["decoding"]["sweep"]),
        bertscore_rescaled=config["scoring"]["bertscore"]["rescale_with_baseline"],
    script:
        "../scripts/report.py"

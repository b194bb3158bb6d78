rule aggregate:
    input:
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
        bleu=config["scoring"]["bleu"],
        statistics=config["statistics"],
    script:
        "../scripts/aggregate.py"


rule compare:
    input:
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
        bleu=config["scoring"]["bleu"],
        statistics=config["statistics"],
    script:
        "../scripts/compare.py"


rule report:
    input:
        test="results/prepare_data/test.jsonl",
        scores="results/scores.csv",
        comparisons="results/comparisons.csv",
        manifest="results/prepare_data/manifest.json",
        adapters=expand("results/finetune/{model}/adapter", model=config["models"]),
        summaries=all_scores(),
        per_example=all_per_example(),
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
        dataset=config["dataset"],
        baseline=config["decoding"]["baseline"],
        seed=config["seed"],
        statistics=config["statistics"],
        warm_start=config["warm_start"],
    script:
        "../scripts/report.py"

rule aggregate:
    input:
        scores=all_scores(),
        perplexities=all_perplexities(),
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
        moved=moved_parameters(config["decoding"]),
    script:
        "../scripts/aggregate.py"


rule report:
    input:
        scores="results/scores.csv",
        manifest="results/prepare_data/manifest.json",
        adapters=expand("results/finetune/{model}/adapter", model=config["models"]),
        summaries=all_scores(),
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
    log:
        "logs/report/report.log",
    conda:
        "../envs/report.yaml"
    params:
        dataset=config["dataset"],
        baseline=config["decoding"]["baseline"],
        seed=config["seed"],
        warm_start=config["warm_start"],
    script:
        "../scripts/report.py"

# Every score and perplexity file checked before aggregate and compare run: Snakemake removes a job's old
# outputs before the job starts, so a damaged file found by aggregate itself would cost scores.csv its numbers.
rule check_scores:
    input:
        **STUDY.score_inputs(),
    output:
        checked=wiring.CHECKED,
    log:
        "logs/check_scores/check_scores.log",
    conda:
        "../envs/report.yaml"
    params:
        code=code_of("check_scores"),
        settings=settings_of("check_scores"),
    script:
        "../scripts/check_scores.py"

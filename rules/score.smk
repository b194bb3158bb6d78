rule score:
    input:
        predictions=wiring.PREDICTIONS,
        test=wiring.SPLIT["test"],
    output:
        summary=wiring.SCORE,
        per_example=wiring.SCORE_EXAMPLES,
    log:
        "logs/score/{model}/{variant}/{decoding}/rep{rep}.log",
    benchmark:
        "benchmarks/score/{model}/{variant}/{decoding}/rep{rep}.tsv"
    conda:
        "../envs/score.yaml"
    threads: resource("score", "threads")
    resources:
        gpu=gpus(),
        runtime=resource("score", "runtime"),
        mem_mb=resource("score", "mem_mb"),
    params:
        code=code_of("score"),
        settings=settings_of("score"),
    script:
        "../scripts/score.py"

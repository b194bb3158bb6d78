rule perplexity:
    input:
        unpack(inputs_of("perplexity", "base", "adapter")),
        test=wiring.SPLIT["test"],
    output:
        summary=wiring.PERPLEXITY,
        per_example=wiring.PERPLEXITY_EXAMPLES,
    log:
        "logs/perplexity/{model}/{variant}.log",
    benchmark:
        "benchmarks/perplexity/{model}/{variant}.tsv"
    conda:
        "../envs/train.yaml"
    threads: resource("perplexity", "threads")
    resources:
        gpu=gpus(),
        runtime=resource("perplexity", "runtime"),
        mem_mb=resource("perplexity", "mem_mb"),
    params:
        code=code_of("perplexity"),
        settings=settings_of("perplexity"),
    script:
        "../scripts/perplexity.py"

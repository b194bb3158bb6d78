rule generate:
    input:
        unpack(inputs_of("generate", "base", "adapter")),
        test=wiring.SPLIT["test"],
    output:
        predictions=wiring.PREDICTIONS,
        info=wiring.GENERATION_INFO,
    log:
        "logs/generate/{model}/{variant}/{decoding}/rep{rep}.log",
    benchmark:
        "benchmarks/generate/{model}/{variant}/{decoding}/rep{rep}.tsv"
    conda:
        "../envs/train.yaml"
    threads: resource("generate", "threads")
    resources:
        gpu=gpus(),
        runtime=resource("generate", "runtime"),
        mem_mb=resource("generate", "mem_mb"),
    params:
        code=code_of("generate"),
        settings=settings_of("generate"),
    script:
        "../scripts/generate.py"

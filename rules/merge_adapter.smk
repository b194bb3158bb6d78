rule merge_adapter:
    input:
        unpack(inputs_of("merge_adapter", "base")),
        adapter=wiring.ADAPTER,
    output:
        merged=directory(wiring.MERGED),
    log:
        "logs/merge_adapter/{model}{adaptation}.log",
    benchmark:
        "benchmarks/merge_adapter/{model}{adaptation}.tsv"
    conda:
        "../envs/train.yaml"
    threads: resource("generate", "threads")
    resources:
        gpu=gpus(),
        runtime=resource("generate", "runtime"),
        mem_mb=resource("generate", "mem_mb"),
    params:
        code=code_of("merge_adapter"),
        settings=settings_of("merge_adapter"),
    script:
        "../scripts/merge_adapter.py"

rule build_tiny_model:
    input:
        train=wiring.SPLIT["train"],
    output:
        model=directory(wiring.BUILT),
    log:
        "logs/build_tiny_model/{model}.log",
    conda:
        "../envs/train.yaml"
    params:
        code=code_of("build_tiny_model"),
        settings=settings_of("build_tiny_model"),
    script:
        "../scripts/build_tiny_model.py"

rule prepare_data:
    input:
        # a local dataset file is an input: editing it reruns the split and everything after it
        unpack(inputs_of("prepare_data", "source")),
    output:
        train=wiring.SPLIT["train"],
        test=wiring.SPLIT["test"],
        manifest=wiring.SPLIT["manifest"],
    log:
        "logs/prepare_data/prepare_data.log",
    conda:
        "../envs/train.yaml"
    params:
        code=code_of("prepare_data"),
        settings=settings_of("prepare_data"),
    script:
        "../scripts/prepare_data.py"

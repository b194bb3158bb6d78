rule convert_gguf:
    input:
        unpack(inputs_of("convert_gguf", "gguf")),
    output:
        model=directory(wiring.CONVERTED),
    log:
        "logs/convert_gguf/{model}.log",
    conda:
        "../envs/train.yaml"
    params:
        code=code_of("convert_gguf"),
        settings=settings_of("convert_gguf"),
    script:
        "../scripts/convert_gguf.py"

rule prepare_data:
    input:
        # a local dataset file is an input: editing it reruns the split and everything after it
        get_dataset_input,
    output:
        train="results/prepare_data/train.jsonl",
        test="results/prepare_data/test.jsonl",
        manifest="results/prepare_data/manifest.json",
    log:
        "logs/prepare_data/prepare_data.log",
    conda:
        "../envs/train.yaml"
    params:
        code=code_of("prepare_data"),
        source=config["dataset"]["source"],
        split=config["dataset"]["split"],
        revision=config["dataset"]["revision"],
        synthetic_size=config["dataset"]["synthetic_size"],
        test_size=config["dataset"]["test_size"],
        train_size=config["dataset"]["train_size"],
        on_invalid=config["dataset"]["on_invalid"],
        duplicates=config["dataset"]["duplicates"],
        seed=config["seed"],
    script:
        "../scripts/prepare_data.py"


rule build_tiny_model:
    input:
        train="results/prepare_data/train.jsonl",
    output:
        directory("results/build_tiny_model/{model}"),
    log:
        "logs/build_tiny_model/{model}.log",
    conda:
        "../envs/train.yaml"
    params:
        code=code_of("build_tiny_model"),
        build=get_build,
        seed=config["seed"],
    script:
        "../scripts/build_tiny_model.py"

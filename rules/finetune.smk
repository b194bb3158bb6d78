rule finetune:
    input:
        train="results/prepare_data/train.jsonl",
        base=get_base_model_input,
    output:
        adapter=directory("results/finetune/{model}/adapter"),
        loss=report(
            "results/finetune/{model}/train_log.csv",
            caption="../reports/train_log.rst",
            category="Training",
            labels={"model": "{model}"},
        ),
    log:
        "logs/finetune/{model}.log",
    benchmark:
        "benchmarks/finetune/{model}.tsv"
    conda:
        "../envs/train.yaml"
    threads: get_resource("finetune", "threads", 4)
    resources:
        gpu=get_resource("finetune", "gpus", gpus()),
        runtime=get_resource("finetune", "runtime", 720),
        mem_mb=get_resource("finetune", "mem_mb", 32000),
    params:
        code=code_of("finetune"),
        base_model=get_base_model,
        load=get_model_params,
        lora=get_lora,
        training=get_training,
        seed=config["seed"],
        device=config["device"],
        checkpoints=lambda wc: f"results/finetune/{wc.model}/checkpoints",
        # Above 1, scripts/finetune.py starts one training process per GPU (accelerate launch);
        # a param, not only a resource: it sets the effective batch, so a change reruns the adapter.
        processes=finetune_processes(),
    script:
        "../scripts/finetune.py"


rule merge_adapter:
    input:
        base=get_base_model_input,
        adapter="results/finetune/{model}/adapter",
    output:
        directory("results/merge_adapter/{model}"),
    log:
        "logs/merge_adapter/{model}.log",
    benchmark:
        "benchmarks/merge_adapter/{model}.tsv"
    conda:
        "../envs/train.yaml"
    threads: get_resource("generate", "threads", 2)
    resources:
        gpu=gpus(),
        runtime=get_resource("generate", "runtime", 240),
        mem_mb=get_resource("generate", "mem_mb", 24000),
    params:
        code=code_of("merge_adapter"),
        base_model=get_base_model,
        load=get_model_params,
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/merge_adapter.py"

rule generate:
    input:
        unpack(get_inference_inputs),
        test="results/prepare_data/test.jsonl",
    output:
        predictions="results/generate/{model}/{variant}/{decoding}/rep{rep}.jsonl",
        info="results/generate/{model}/{variant}/{decoding}/rep{rep}.info.json",
    log:
        "logs/generate/{model}/{variant}/{decoding}/rep{rep}.log",
    benchmark:
        "benchmarks/generate/{model}/{variant}/{decoding}/rep{rep}.tsv"
    conda:
        "../envs/train.yaml"
    threads: get_resource("generate", "threads", 2)
    resources:
        gpu=gpus(),
        runtime=get_resource("generate", "runtime", 240),
        mem_mb=get_resource("generate", "mem_mb", 24000),
    params:
        code=code_of("generate"),
        base_model=get_inference_model,
        load=get_inference_load,
        generation=get_generation,
        batch_size=config["generation"]["batch_size"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/generate.py"

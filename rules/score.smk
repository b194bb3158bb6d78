rule score:
    input:
        predictions="results/generate/{model}/{variant}/{decoding}/rep{rep}.jsonl",
        test="results/prepare_data/test.jsonl",
    output:
        summary="results/score/{model}/{variant}/{decoding}/rep{rep}.json",
        per_example="results/score/{model}/{variant}/{decoding}/rep{rep}.per_example.csv",
    log:
        "logs/score/{model}/{variant}/{decoding}/rep{rep}.log",
    benchmark:
        "benchmarks/score/{model}/{variant}/{decoding}/rep{rep}.tsv"
    conda:
        "../envs/score.yaml"
    threads: get_resource("score", "threads", 2)
    resources:
        gpu=gpus(),
        runtime=get_resource("score", "runtime", 60),
        mem_mb=get_resource("score", "mem_mb", 16000),
    params:
        code=code_of("score"),
        bleu=config["scoring"]["bleu"],
        rouge=config["scoring"]["rouge"],
        bertscore=config["scoring"]["bertscore"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/score.py"


rule perplexity:
    input:
        unpack(get_inference_inputs),
        test="results/prepare_data/test.jsonl",
    output:
        summary="results/perplexity/{model}/{variant}.json",
        per_example="results/perplexity/{model}/{variant}.per_example.csv",
    log:
        "logs/perplexity/{model}/{variant}.log",
    benchmark:
        "benchmarks/perplexity/{model}/{variant}.tsv"
    conda:
        "../envs/train.yaml"
    threads: get_resource("perplexity", "threads", 2)
    resources:
        gpu=gpus(),
        runtime=get_resource("perplexity", "runtime", 60),
        mem_mb=get_resource("perplexity", "mem_mb", 24000),
    params:
        code=code_of("perplexity"),
        base_model=get_inference_model,
        load=get_inference_load,
        batch_size=config["scoring"]["perplexity"]["batch_size"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/perplexity.py"

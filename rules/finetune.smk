rule finetune:
    input:
        unpack(inputs_of("finetune", "base")),
        train=wiring.SPLIT["train"],
    output:
        adapter=directory(wiring.ADAPTER),
        loss=report(
            wiring.LOSS,
            caption="../reports/train_log.rst",
            category="Training",
            labels={"model": "{model}{adaptation}"},
        ),
    log:
        "logs/finetune/{model}{adaptation}.log",
    benchmark:
        "benchmarks/finetune/{model}{adaptation}.tsv"
    conda:
        "../envs/train.yaml"
    threads: resource("finetune", "threads")
    resources:
        # Above 1, the job trains one process per GPU (lmsweep.steps.finetune); the count is also in the
        # settings, since it sets the effective batch: a change of it reruns the adapter.
        gpu=STUDY.training_gpus(),
        runtime=resource("finetune", "runtime"),
        mem_mb=resource("finetune", "mem_mb"),
    params:
        code=code_of("finetune"),
        settings=settings_of("finetune"),
    script:
        "../scripts/finetune.py"

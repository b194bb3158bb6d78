rule report:
    input:
        **STUDY.report_inputs(),
    output:
        markdown=f"{wiring.REPORT}/report.md",
        html=report(
            f"{wiring.REPORT}/report.html",
            caption="../reports/report.rst",
            category="Scores",
        ),
        runtime=report(
            f"{wiring.REPORT}/runtime.csv",
            caption="../reports/runtime.rst",
            category="Runtime",
        ),
        plots=[
            report(
                path,
                caption="../reports/sweep.rst",
                category="Sweeps",
                labels={"parameter": parameter},
            )
            for parameter, path in STUDY.sweep_plots().items()
        ],
        cost=report(
            f"{wiring.REPORT}/cost.png",
            caption="../reports/cost.rst",
            category="Runtime",
        ),
        loss_plots=[
            report(
                path,
                caption="../reports/loss_curves.rst",
                category="Training",
                labels={"model": f"{model}: every adapter"},
            )
            for model, path in STUDY.loss_plots().items()
        ],
        adaptation_plots=[
            report(
                path,
                caption="../reports/adaptation.rst",
                category="Adaptation",
                labels={"figure": name},
            )
            for name, path in STUDY.adaptation_plots().items()
        ],
    log:
        "logs/report/report.log",
    conda:
        "../envs/report.yaml"
    params:
        code=code_of("report"),
        settings=settings_of("report"),
    script:
        "../scripts/report.py"

"""The study estimate with an adaptation sweep (bench/study.py), and bench/dag.py's comparison of its reduced study
with the sweep, on a CPU from the committed H200 results.

No sweep and no calibration (--no-dag-calibration) must give the estimate BENCHMARKS.md quotes, byte for byte; the
calibration (a finetune and a merge job's fixed costs) is read from the earlier dag run alone, and today's run with
a sweep (h200-2026-12-02-adapt) is compared with it, held out.
"""

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

BENCH = Path(__file__).resolve().parents[1]
RESULTS = [BENCH / "results" / "h200-2026-11-29", BENCH / "results" / "h200-2026-11-29-decode"]
DAG2 = BENCH / "results" / "h200-2026-11-29-dag2"  # the calibration's run: bench/dag.py without a sweep
ADAPT = BENCH / "results" / "h200-2026-12-02-adapt" / "bench_dag_adapt.json"  # with a sweep: held out


@pytest.fixture(scope="module")
def bench():
    """The bench modules: bench/study.py (the CLI), the estimate's costs, calibration and sweep_estimate, and
    bench/dag.py with its comparison, dag_compare."""
    sys.path.insert(0, str(BENCH))
    try:
        import calibration
        import costs
        import dag
        import dag_compare
        import study
        import sweep_estimate

        yield SimpleNamespace(study=study, costs=costs, calibration=calibration, sweep_estimate=sweep_estimate,
                              dag=dag, dag_compare=dag_compare)
    finally:
        sys.path.remove(str(BENCH))


def raw(name, folder=0):
    return json.loads((RESULTS[folder] / name).read_text())


def test_without_a_sweep_or_calibration_the_study_estimate_is_benchmarks_mds_byte_for_byte(bench, tmp_path,
                                                                                              monkeypatch, capsys):
    study = bench.study
    monkeypatch.setenv("OUT", str(tmp_path))
    study.main(["--results", *map(str, RESULTS), "--no-dag-calibration"])
    # bench/results/h200-2026-11-29-decode/bench_study.json is what `bench/study.py` wrote there before the sweep
    # and the calibration
    assert (tmp_path / "bench_study.json").read_text() == (RESULTS[1] / "bench_study.json").read_text()
    assert "adaptation sweep" not in capsys.readouterr().out


def test_the_calibration_adds_a_finetune_jobs_fixed_cost_and_a_merge_jobs_wall_time(bench, tmp_path, monkeypatch):
    study, costs = bench.study, bench.costs
    monkeypatch.setenv("OUT", str(tmp_path))
    study.main(["--results", *map(str, RESULTS)])
    written = json.loads((tmp_path / "bench_study.json").read_text())
    before = json.loads((RESULTS[1] / "bench_study.json").read_text())["estimates"]
    fixed = written["calibration"]
    assert fixed["run"]["source"] == "bench/results/h200-2026-11-29-dag2/bench_dag.json"
    merges = {m: raw(f"bench_generate_{m}.json")["merge_adapter_s"] for m in costs.PARAMETERS}
    finetunes = sum(fixed["finetune_s"] * p / costs.PARAMETERS["llama2_7b"] for p in costs.PARAMETERS.values())
    for new, old in zip(written["estimates"], before, strict=True):
        for part in ("training_s", "generation_s", "score_s", "perplexity_s"):
            assert new[part] == old[part]
        # minutes: every model's finetune job its fixed cost, the new path's merges their calibrated wall time
        assert new["job_overhead_s"] == pytest.approx(old["job_overhead_s"] + finetunes / 60, rel=1e-12)
        merge = sum(merges.values()) * fixed["merge_s"] / merges["llama2_7b"] if old["path"] == "new" else 0.0
        assert new["merge_s"] == pytest.approx(merge / 60, rel=1e-12)


def test_a_swept_adapter_adds_what_the_per_step_costs_give(bench):
    study, costs, sweep_estimate = bench.study, bench.costs, bench.sweep_estimate
    sweep = {"r": [32], "epochs": [2], "load_in_4bit": [False]}
    start, replicates, tokens = costs.WARM_FORK_S, 3, 256
    added = sweep_estimate.sweep_estimate(RESULTS, ["llama2_7b"], sweep, ["baseline", "num_beams_4"], tokens,
                                          replicates, start, settings=study.reference_decoding())
    # each adapter: one finetune, one merge, 3 replicates of each (sampled) config, their scores, one perplexity
    assert added["jobs"] == {"finetune": 3, "merge_adapter": 3, "generate": 18, "score": 18, "perplexity": 3}
    assert [(a["adaptation"], a["steps"]) for a in added["adapters"]] == [
        ("r_32", 313), ("epochs_2", 626), ("load_in_4bit_false", 313)]

    train = {r["run"]: r["step_s"] for r in raw("bench_train_llama2_7b.json")["rows"]}
    gen = raw("bench_generate_llama2_7b.json")
    score = {r["step"]: r["seconds"] for r in raw("bench_score.json")["rows"]}
    calls = {r["call"]: r for r in raw("bench_decode_llama2_7b.json", 1)["rows"] if r["variant"] == "dynamic"}
    beams8 = next(r for r in raw("bench_decode_llama2_7b_beams8.json", 1)["rows"]
                  if r["variant"] == "dynamic" and r["call"] == 1)["tokens_per_s"]
    steady = calls[2]["tokens_per_s"]
    warmup = calls[1]["seconds"] - calls[1]["new_tokens"] / steady
    load = next(r["load_s"] for r in gen["rows"] if r["path"].startswith("new") and r["config"] == "baseline")
    per_record = next(v for k, v in gen["perplexity_s_per_record"].items() if k.startswith("new"))
    score_job = score["BERTScore, 200 pairs, first (loads the model)"] + score["BLEU and ROUGE-L, 200 pairs"]

    training = (313 + 626) * train["qlora"] + 313 * train["bf16"]
    generation = 3 * replicates * (warmup + 200 * tokens / steady + 200 * tokens / (beams8 * 8 / 4))
    expected = {"training_s": training, "merge_s": 3 * gen["merge_adapter_s"], "generation_s": generation,
                "score_s": 18 * score_job, "perplexity_s": 3 * 200 * per_record,
                # finetune and merge start; generate and perplexity jobs start and load; score jobs start
                "job_overhead_s": 3 * (2 * start + 6 * (start + load) + (start + load) + 6 * start)}
    assert added["parts"] == pytest.approx(expected, rel=1e-12)
    assert sum(added["by_rule"].values()) == pytest.approx(sum(expected.values()), rel=1e-12)


def test_a_swept_adapter_under_every_config_costs_what_the_baseline_adapter_does(bench):
    study, costs, sweep_estimate = bench.study, bench.costs, bench.sweep_estimate
    configs = study.reference_decoding()
    for calibration in (None, bench.calibration.calibrate(RESULTS)):
        for model in costs.PARAMETERS:  # Mistral-7B's and Phi-2's training is scaled from Llama-2-7B's
            added = sweep_estimate.sweep_estimate(RESULTS, [model], {"learning_rate": [1e-4]}, list(configs), 256, 3,
                                                  0.5, settings=configs, calibration=calibration)
            # the baseline adapter's part of the reference study: its 9 sampled and 4 beam configs, one perplexity job
            by_rule = {}
            baseline = costs.estimate(RESULTS, [model], 256, 3, "new", 0.5,
                                      study=dict(costs.STUDY, sampled=9, perplexity_jobs=1), calibration=calibration,
                                      by_rule=by_rule)
            assert added["parts"] == pytest.approx(baseline, rel=1e-12)
            assert added["by_rule"] == pytest.approx(by_rule, rel=1e-12)
            assert added["jobs"] == {"finetune": 1, "merge_adapter": 1, "generate": 39, "score": 39, "perplexity": 1}


def test_the_calibration_is_read_from_the_earlier_dag_run(bench):
    costs, calibration = bench.costs, bench.calibration
    run = calibration.read_dag_run()  # DAG_CALIBRATION
    assert calibration.DAG_CALIBRATION == DAG2
    jobs = {r["job"]: r["seconds"] for r in json.loads((DAG2 / "bench_dag.json").read_text())["rows"]
            if r["step"] == "job"}
    assert (run["model"], run["warm"], run["load_in_4bit"], run["validation_size"]) == ("llama2_7b", True, True, 0)
    assert run["finetune_wall_s"] == jobs["finetune/llama2_7b"] == 34.17
    assert run["merge_wall_s"] == jobs["merge_adapter/llama2_7b"] == 24.32
    assert (run["steps"], run["train_runtime_s"]) == (25, 21.36)  # training_info.json; the job log's train_runtime
    assert calibration.read_dag_run(DAG2) == run == calibration.read_dag_run(DAG2 / "bench_dag.json")

    fixed = calibration.calibrate(RESULTS)
    step = next(r["step_s"] for r in raw("bench_train_llama2_7b.json")["rows"] if r["run"] == "qlora")
    start = costs.WARM_FORK_S  # the run started its jobs warm
    assert fixed["finetune_s"] == pytest.approx(34.17 - start - 25 * step, rel=1e-12)  # 18.3 s
    assert fixed["outside_training_s"] == pytest.approx(34.17 - start - 21.36)  # load, setup, save: 12.3 s
    assert fixed["first_steps_s"] == pytest.approx(21.36 - 25 * step)  # the first steps' warm-up: 6.0 s
    assert fixed["merge_s"] == pytest.approx(24.32 - start)
    assert fixed["merge_bench_s"] == raw("bench_generate_llama2_7b.json")["merge_adapter_s"]
    # a run without the calibration: the estimate as before
    assert costs.model_fixed(None, "llama2_7b", {}) is None
    # another model: the finetune's fixed cost by parameters, the merge by its own bench/generate.py merge
    phi2 = costs.model_fixed(fixed, "phi2", raw("bench_generate_phi2.json"))
    assert phi2["finetune_s"] == pytest.approx(fixed["finetune_s"] * 2.78 / 6.74)
    assert phi2["merge_s"] == pytest.approx(9.2 * (24.32 - start) / 17.4)


def test_a_calibrated_finetune_job_is_its_start_its_steps_and_the_fixed_cost(bench):
    costs, calibration, sweep_estimate = bench.costs, bench.calibration, bench.sweep_estimate
    fixed = calibration.calibrate(RESULTS)
    step = next(r["step_s"] for r in raw("bench_train_llama2_7b.json")["rows"] if r["run"] == "qlora")
    reduced = {**costs.STUDY, "steps": 24, "validation_size": 16, "logging_steps": 10, "batch": 16}
    for start in (costs.WARM_FORK_S, costs.cold_start_s(RESULTS)):
        added = sweep_estimate.sweep_estimate(RESULTS, ["llama2_7b", "phi2"], {"r": [32], "epochs": [2]}, ["baseline"],
                                              150, 1, start, reduced, calibration=fixed)
        for a in added["adapters"]:
            scale = costs.PARAMETERS[a["model"]] / costs.PARAMETERS["llama2_7b"]
            steps = a["steps"] * step * scale + costs.validation_s(a["steps"], reduced, step * scale)
            assert a["by_rule"]["finetune"] == pytest.approx(start + steps + fixed["finetune_s"] * scale, rel=1e-12)
            merge = raw(f"bench_generate_{a['model']}.json")["merge_adapter_s"] * fixed["merge_s"] / 17.4
            assert a["by_rule"]["merge_adapter"] == pytest.approx(start + merge, rel=1e-12)
        # the reference study's finetune job: the same
        by_rule = {}
        costs.estimate(RESULTS, ["llama2_7b"], 150, 1, "new", start, reduced, calibration=fixed, by_rule=by_rule)
        assert by_rule["finetune"] == pytest.approx(start + 24 * step + costs.validation_s(24, reduced, step)
                                                    + fixed["finetune_s"], rel=1e-12)


def test_sweep_specs_steps_and_refusals(bench):
    study, sweep_estimate = bench.study, bench.sweep_estimate
    assert sweep_estimate.parse_sweep(["r=4,32", "learning_rate=1e-4", "load_in_4bit=false",
                                       "target_modules=attention", "epochs=0.5"]) == {
        "r": [4, 32], "learning_rate": [1e-4], "load_in_4bit": [False], "target_modules": ["attention"],
        "epochs": [0.5]}
    for bad in (["rank=4"], ["r="], ["r"]):
        with pytest.raises(ValueError):
            sweep_estimate.parse_sweep(bad)
    plan = sweep_estimate.sweep_plan({"epochs": [0.5, 3], "max_steps": [100]}, ["baseline"], 3)
    assert {n: e["steps"] for n, e in plan.items()} == {"epochs_0.5": 157, "epochs_3": 939, "max_steps_100": 100}
    with pytest.raises(ValueError, match="baseline adapter's value"):
        sweep_estimate.sweep_plan({"r": [16]}, ["baseline"], 1)
    with pytest.raises(ValueError, match="not the study's"):
        sweep_estimate.sweep_plan({"r": [4]}, ["nucleus"], 1, settings=study.reference_decoding())
    # a config that does not sample runs once whatever the replicates
    jobs = sweep_estimate.decoding_jobs(["baseline", "greedy"], 3, {"baseline": {"do_sample": True},
                                                                    "greedy": {"do_sample": False}})
    assert jobs == [("baseline", 1, 3), ("greedy", 1, 1)]


def test_the_validation_loss_costs_a_third_of_a_step_per_batch_per_evaluation(bench):
    costs = bench.costs
    reduced = {"validation_size": 16, "logging_steps": 10, "batch": 16}
    assert costs.validation_s(24, reduced, 0.6) == pytest.approx(3 * 0.2)  # steps 10, 20 and the end
    assert costs.validation_s(20, reduced, 0.6) == pytest.approx(2 * 0.2)  # the end was a logged step
    assert costs.validation_s(20, dict(reduced, validation_size=17), 0.6) == pytest.approx(2 * 2 * 0.2)
    assert costs.validation_s(20, {}, 0.6) == 0.0


def test_the_study_cli_prints_the_sweep_beside_the_unchanged_reference(bench, tmp_path, monkeypatch, capsys):
    study = bench.study
    monkeypatch.setenv("OUT", str(tmp_path))
    study.main(["--results", *map(str, RESULTS)])
    alone = json.loads((tmp_path / "bench_study.json").read_text())["estimates"]
    study.main(["--results", *map(str, RESULTS), "--adaptation-sweep", "r=4,32", "learning_rate=1e-4"])
    written = json.loads((tmp_path / "bench_study.json").read_text())
    assert written["estimates"] == alone
    rows = written["adaptation"]["estimates"]
    assert [(r["new_tokens"], r["replicates"], r["job_start"]) for r in rows] == [
        (t, n, s) for t in (256, 150) for n in (1, 3) for s in ("cold", "warm")]
    warm3 = next(r for r in rows if (r["new_tokens"], r["replicates"], r["job_start"]) == (256, 3, "warm"))
    assert warm3["adapters"] == 9 and warm3["jobs"] == 9 * (1 + 1 + 3 + 3 + 1)
    assert warm3["with_sweep_gpu_hours"] == pytest.approx(warm3["reference_gpu_hours"] + warm3["gpu_hours"])
    assert "What the adaptation sweep r=4,32, learning_rate=0.0001 adds" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        study.main(["--results", *map(str, RESULTS), "--adaptation-sweep", "r=16"])


def reduced_config(dag, adaptations=True, cpu=False):
    return dag.study_config(yaml.safe_load((BENCH.parent / "config.yaml").read_text()), "llama2_7b", "/m",
                            "/r.jsonl", 200, 400, 150, cpu, False, None if cpu else "/bert", adaptations)


def benchmark_rows(config, time=10.0):
    """Benchmark rows (dag.read_benchmarks') of every GPU job a reduced study's config plans, as the workflow
    names them."""
    sys.path.insert(0, str(BENCH.parent / "scripts"))
    from lmsweep.wiring import Study

    # the schema's defaults, as the workflow reads a config without an adaptation section
    plan = Study({**config, "adaptation": config.get("adaptation") or {
        "sweep": {}, "alpha": "follows_rank", "decoding": ["baseline"], "models": None}})
    files = plan.benchmarks()
    return [{"rule": f.split("/")[1], "job": f.split("/", 1)[1].removesuffix(".tsv"), "seconds": time}
            for f in files]


def test_dag_splits_the_sweeps_jobs_from_the_reference_and_estimates_each(bench):
    dag, dag_compare = bench.dag, bench.dag_compare
    config = reduced_config(dag)
    assert config["adaptation"]["sweep"] == dag.SWEEP and config["training"]["validation_size"] == 16
    assert dag_compare.part_of("finetune/llama2_7b@r_32", {"r_32": ()}) == "r_32"
    assert dag_compare.part_of("generate/llama2_7b/r_32/baseline/rep0", {"r_32": ()}) == "r_32"
    assert dag_compare.part_of("perplexity/llama2_7b/finetuned", {"r_32": ()}) is None
    rows = dag_compare.compare(benchmark_rows(config), config, "llama2_7b", 200, 400, 150, RESULTS)
    planned = {r["part"]: r for r in rows if r["step"].startswith("jobs, planned")}
    assert planned["reference"]["agree"] and planned["sweep"]["agree"]
    assert planned["sweep"]["ran"] == {"finetune": 2, "merge_adapter": 2, "generate": 2, "score": 2, "perplexity": 2}
    sweep = next(r for r in rows if r["step"] == "estimate of the adaptation sweep (bench/study.py)")
    # 400 records less the 16 held out: 24 steps of 16, for every adapter
    assert [(a["adaptation"], a["steps"]) for a in sweep["adapters"]] == [("r_32", 24), ("learning_rate_0.0001", 24)]
    assert sweep["measured"] == 10 * 10.0
    by_rule = [r for r in rows if r["step"] == "rule against estimate" and r["part"] == "sweep"]
    assert [r["rule"] for r in by_rule] == list(dag_compare.GPU_RULES)
    assert sum(r["estimate"] for r in by_rule) == pytest.approx(sweep["seconds"], abs=0.3)
    reference = next(r for r in rows if r["step"] == "estimate (bench/study.py, same reduced study)")
    assert reference["measured_over_estimate"] == round(14 * 10.0 / reference["seconds"], 2)  # its 14 GPU jobs
    by_rule = [r for r in rows if r["step"] == "rule against estimate" and r["part"] == "reference"]
    assert [(r["rule"], r["jobs"]) for r in by_rule] == [("finetune", 1), ("merge_adapter", 1), ("generate", 5),
                                                         ("score", 5), ("perplexity", 2)]
    assert sum(r["estimate"] for r in by_rule) == pytest.approx(reference["seconds"], abs=0.3)


def test_dag_without_adaptations_estimates_the_reduced_study_as_before(bench):
    costs, dag, dag_compare = bench.costs, bench.dag, bench.dag_compare
    config = reduced_config(dag, adaptations=False)
    rows = dag_compare.compare(benchmark_rows(config), config, "llama2_7b", 200, 400, 150, RESULTS,
                               calibration=None)
    assert [r["step"] for r in rows] == ["jobs, planned (bench/study.py) against run",
                                         "estimate (bench/study.py, same reduced study)",
                                         *["rule against estimate"] * 5]
    assert rows[0]["agree"]
    parts = costs.estimate(RESULTS, ["llama2_7b"], 150, 1, "new", costs.WARM_FORK_S,
                           study=dict(dag_compare.REDUCED, prompts=200, steps=math.ceil(400 / 16)))
    assert rows[1]["seconds"] == round(sum(parts.values()), 1) == 176.8  # BENCHMARKS.md's estimate
    # calibrated (the default): the finetune job's fixed cost and the merge job's wall time of the earlier run
    rows = dag_compare.compare(benchmark_rows(config), config, "llama2_7b", 200, 400, 150, RESULTS)
    assert rows[1]["step"].startswith("calibration")
    reference = {r["rule"]: r["estimate"] for r in rows if r["step"] == "rule against estimate"}
    assert (reference["finetune"], reference["merge_adapter"]) == (34.2, 24.3)  # the run's own 34.17 and 24.32
    # a CPU run (batch 8, no 4-bit) gets the planned jobs alone
    cpu = reduced_config(dag, cpu=True)
    assert [r["agree"] for r in dag_compare.compare(benchmark_rows(cpu), cpu, "tiny", 24, 96, 16)] == [True, True]


def test_compare_recomputes_a_finished_runs_comparison_without_a_gpu(bench):
    dag_compare = bench.dag_compare
    committed = json.loads(ADAPT.read_text())["rows"]
    # without the calibration: what the run's JSON holds (its estimate of the day)
    rows = dag_compare.compare_run(ADAPT, RESULTS, calibration=None)
    for step in ("estimate (bench/study.py, same reduced study)", "estimate of the adaptation sweep (bench/study.py)",
                 "estimate, the reduced study with its sweep"):
        ours, theirs = (next(r for r in got if r["step"] == step) for got in (rows, committed))
        assert (ours["seconds"], ours["measured_over_estimate"]) == (theirs["seconds"],
                                                                      theirs["measured_over_estimate"])
    ours = [(r["rule"], r["seconds"], r["estimate"]) for r in rows
            if r["step"] == "rule against estimate" and r["part"] == "sweep"]
    assert ours == [(r["rule"], r["seconds"], r["estimate"]) for r in committed if r["step"] == "rule against estimate"]
    # calibrated on the earlier run: each swept finetune job 0.5 + 24 steps + 3 evaluations + the fixed cost
    rows = dag_compare.compare_run(ADAPT, RESULTS)
    fixed = next(r for r in rows if r["step"].startswith("calibration"))
    assert fixed["source"].endswith("h200-2026-11-29-dag2/bench_dag.json")
    finetune = next(r for r in rows if r["step"] == "rule against estimate" and r["part"] == "sweep"
                    and r["rule"] == "finetune")
    step = fixed["step_s"]
    assert finetune["estimate"] == pytest.approx(2 * (0.5 + 24 * step + 3 * step / 3 + fixed["finetune_fixed_s"]),
                                                 abs=0.1)

"""The benches' own code on a CPU: the study estimate from the committed H200 results, and bench/decode.py.

BENCHMARKS.md quotes bench/study.py over bench/results/; if the estimate's code or the raw results change,
the numbers there must change with them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1]
RESULTS = [BENCH / "results" / "h200-2026-11-29", BENCH / "results" / "h200-2026-11-29-decode"]


@pytest.fixture(scope="module")
def costs():
    """bench/costs.py: the estimate bench/study.py prints."""
    sys.path.insert(0, str(BENCH))
    try:
        import costs

        yield costs
    finally:
        sys.path.remove(str(BENCH))


def gpu_hours(costs, folders, new_tokens, start_s):
    return sum(costs.estimate(folders, costs.PARAMETERS, new_tokens, 1, "new", start_s).values()) / 3600


def test_the_study_estimate_in_benchmarks_md_comes_from_the_committed_results(costs):
    assert gpu_hours(costs, RESULTS, 256, costs.WARM_FORK_S) == pytest.approx(0.65, abs=0.005)
    assert gpu_hours(costs, RESULTS, 150, costs.WARM_FORK_S) == pytest.approx(0.49, abs=0.005)
    cold = costs.cold_start_s(RESULTS)
    assert gpu_hours(costs, RESULTS, 256, cold) == pytest.approx(1.15, abs=0.005)
    old = sum(costs.estimate(RESULTS, costs.PARAMETERS, 256, 1, "old", cold).values()) / 3600
    assert old == pytest.approx(13.87, abs=0.005)
    # the estimate of the day before the attention change: the earlier results alone, 1 s warm starts
    assert gpu_hours(costs, RESULTS[:1], 256, 1.0) == pytest.approx(0.76, abs=0.005)


def test_a_decode_measurement_sets_the_sampled_rate_and_the_warmup(costs):
    gen = json.loads((RESULTS[0] / "bench_generate_llama2_7b.json").read_text())
    decode = {"rows": [
        {"variant": "cudnn", "call": 1, "seconds": 99.0, "new_tokens": 1000, "tokens_per_s": 1.0},
        {"variant": "dynamic", "call": 1, "seconds": 3.0, "new_tokens": 2000, "tokens_per_s": 666.7},
        {"variant": "dynamic", "call": 2, "seconds": 2.0, "new_tokens": 2000, "tokens_per_s": 1000.0},
    ]}
    rates = costs.generation_rates(gen, "new", decode)
    assert rates["steady"] == 1000.0 and rates["warmup"] == pytest.approx(1.0)
    without = costs.generation_rates(gen, "new")
    assert without["steady"] == pytest.approx(gen["library_sampling_tokens_per_s"] * costs.PER_EXAMPLE_STREAMS)


def test_results_folders_given_later_win_and_an_unmeasured_model_borrows_all_of_llamas_rates(costs, tmp_path):
    early, late = tmp_path / "early", tmp_path / "late"
    for folder, value in ((early, 1), (late, 2)):
        folder.mkdir()
        (folder / "x.json").write_text(json.dumps({"v": value}))
    (early / "only_early.json").write_text(json.dumps({"v": 3}))
    assert costs.read([early, late], "x.json") == {"v": 2}
    assert costs.read([early, late], "only_early.json") == {"v": 3}
    assert costs.read(early, "missing.json") is None
    # Phi-2 without its own generate bench: Llama-2-7B's rates, decode included, scaled by parameters
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(RESULTS[0], partial)
    (partial / "bench_generate_phi2.json").unlink()
    llama = costs.estimate(RESULTS, ["llama2_7b"], 256, 1, "new", 0.5)["generation_s"]
    notes = []
    phi = costs.estimate([partial, RESULTS[1]], ["phi2"], 256, 1, "new", 0.5, notes=notes)["generation_s"]
    # (the per-job warm-up is not scaled)
    assert phi == pytest.approx(llama * costs.PARAMETERS["phi2"] / costs.PARAMETERS["llama2_7b"], rel=0.005)
    assert any(n.startswith("phi2, sampled configs: llama2_7b's bench/decode.py") for n in notes), notes


def test_bench_decode_runs_each_variant_in_its_own_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "decode.py", "--shape", "tiny", "--cpu", "--prompts", "6", "--new-tokens", "4",
         "--variants", "cudnn,dynamic", "--profile", "dynamic", "--work", str(tmp_path / "models")],
        cwd=BENCH, env={**os.environ, "OUT": str(tmp_path / "out")}, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "bench_decode_tiny.json").read_text())["rows"]
    assert not [r for r in rows if "error" in r], rows
    calls = {(r["variant"], r["call"], r["process"]) for r in rows}
    assert calls == {("cudnn", 1, 1), ("cudnn", 2, 1), ("dynamic", 1, 2), ("dynamic", 2, 2), ("dynamic", "profile", 2)}
    assert all(r["new_tokens"] == 6 * 4 for r in rows if isinstance(r["call"], int))


def test_bench_sampler_times_the_sampler_before_and_after_its_fix(tmp_path):
    result = subprocess.run(
        [sys.executable, "sampler.py", "--rows", "4", "--vocab", "64,100", "--repeats", "2", "--rounds", "2",
         "--out", str(tmp_path)], cwd=BENCH, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads((tmp_path / "bench_sampler.json").read_text())["results"]
    assert [(r["device"], r["vocab"], r["steps"]) for r in rows] == [("cpu", 64, 4), ("cpu", 100, 4)]
    assert all(r["before_ms"] > 0 and r["after_ms"] > 0 for r in rows)

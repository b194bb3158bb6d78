"""The benches' own code on a CPU: bench/decode.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_bench_decode_runs_each_variant_in_its_own_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "decode.py", "--shape", "tiny", "--cpu", "--prompts", "6", "--new-tokens", "4",
         "--variants", "cudnn,dynamic", "--profile", "dynamic", "--work", str(tmp_path / "models")],
        cwd=BENCH, env={**os.environ, "OUT": str(tmp_path / "out")}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "bench_decode_tiny.json").read_text())["rows"]
    assert not [r for r in rows if "error" in r], rows
    calls = {(r["variant"], r["call"], r["process"]) for r in rows}
    assert calls == {("cudnn", 1, 1), ("cudnn", 2, 1), ("dynamic", 1, 2), ("dynamic", 2, 2), ("dynamic", "profile", 2)}
    assert all(r["new_tokens"] == 6 * 4 for r in rows if isinstance(r["call"], int))

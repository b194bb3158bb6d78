"""Warm start on a GPU: jobs forked from the real server use CUDA and bitsandbytes.

On a CPU machine torch.cuda.is_initialized() is false whatever the server does,
so tests/runtime/test_warm.py cannot see what matters here. This script starts
scripts/lmsweep/runtime/warm_server.py with the real preload, as a run's start
does (lmsweep.runtime.start), and runs through it (each job must run in a fork
of the server, not cold):

  1. a job that computes on CUDA, and two such jobs at once;
  2. scripts/generate.py as Snakemake runs it, 4-bit (QLoRA's bitsandbytes
     NF4 loading, imported in the fork) and in bf16 (bitsandbytes hidden);
  3. a job that imports bitsandbytes itself and runs a 4-bit layer on CUDA.

Then two controls show that the server's own check (warm_server.cuda_problem(), which
makes it refuse to serve) sees a process that touched CUDA: one that imported
bitsandbytes, and one that asked torch.cuda.is_available() through the CUDA
driver (without PYTORCH_NVML_BASED_CUDA_CHECK).

    python tests/gpu/warm_cuda_check.py            # prints one line per check, then PASS or FAIL

Needs torch with CUDA, transformers, peft, bitsandbytes, bert-score,
rouge-score, sacrebleu and pandas; no network (the model is built here).
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from lmsweep.runtime import warm_protocol  # noqa: E402  (light: no heavy import at module level)

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(SCRIPTS), os.environ.get("PYTHONPATH")] if p)}
results = []


def check(name: str, ok: bool, detail="") -> None:
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + str(detail) if detail else ''}", flush=True)


def python(code: str, env=None, timeout=600):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env or ENV,
                          capture_output=True, text=True, timeout=timeout)


def last_json(result):
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": (result.stdout + result.stderr)[-2000:]}


def start_client(script: Path, socket_path: Path, cwd: Path, **env):
    return subprocess.Popen(
        [sys.executable, str(script)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**ENV, warm_protocol.SOCKET_ENV: str(socket_path), "OMP_NUM_THREADS": "2", **env},
    )


def finish(client, timeout=600):
    out, err = client.communicate(timeout=timeout)
    return subprocess.CompletedProcess(client.args, client.returncode, out, err)


def job_file(tmp: Path, name: str, body: str) -> Path:
    path = tmp / f"{name}.py"
    path.write_text("from lmsweep.runtime.warm_client import delegate\ndelegate()\n" + textwrap.dedent(body))
    return path


CUDA_JOB = """
    import json, os, torch
    before = {"initialized": torch.cuda.is_initialized(), "bad_fork": torch.cuda._is_in_bad_fork()}
    a = torch.randn(2048, 2048, device="cuda", dtype=torch.bfloat16)
    value = float((a @ a.T).float().diagonal().mean())  # the mean squared row norm: about 2048
    print(json.dumps({"ppid": os.getppid(), **before, "value": value, "device": torch.cuda.get_device_name()}))
"""

BNB_JOB = """
    import json, os, sys
    from lmsweep.models import skip_bitsandbytes

    skip_bitsandbytes(True)
    import torch
    import bitsandbytes as bnb
    from transformers.utils import is_bitsandbytes_available

    layer = bnb.nn.Linear4bit(256, 256, compute_dtype=torch.bfloat16, quant_type="nf4").cuda()
    y = layer(torch.randn(4, 256, device="cuda", dtype=torch.bfloat16))
    print(json.dumps({"ppid": os.getppid(), "shape": list(y.shape), "finite": bool(torch.isfinite(y).all()),
                      "quantized": layer.weight.quant_state is not None, "transformers": is_bitsandbytes_available()}))
"""

# As Snakemake's script: directive writes a job's script: a preamble that builds `snakemake`,
# then the script's source. Its first line records which process runs the file.
SNAKEMAKE_PREAMBLE = """
import json as _json, os as _os, types as _types

with open({pids!r}, "a") as _pids:
    _pids.write(f"{{_os.getpid()}} {{_os.getppid()}}\\n")


class _Names(list):
    def __init__(self, named):
        super().__init__(named.values())
        self.__dict__.update(named)

    def items(self):
        return list(self.__dict__.items())

    def get(self, key, default=None):  # as Snakemake's Namedlist
        return self.__dict__.get(key, default)

    def keys(self):
        return self.__dict__.keys()


_job = _json.loads({job!r})
snakemake = _types.SimpleNamespace(rule=_job["rule"], threads=_job["threads"],
                                   **{{k: _Names(v) for k, v in _job["named"].items()}})
"""


def generate_job(tmp: Path, name: str, base: Path, test: Path, load_in_4bit: bool) -> tuple[Path, Path, Path]:
    from lmsweep.settings import Decoding, Load, Quantization, RunLabels, as_mapping
    from lmsweep.steps.generate import Settings

    out, pids, log = tmp / f"{name}.jsonl", tmp / f"{name}.pids", tmp / f"{name}.log"
    load = Load(revision=None, snapshot=None, source=None, trust_remote_code=False,
                quantization=Quantization(load_in_4bit=load_in_4bit, quant_type="nf4", double_quant=True,
                                          compute_dtype="bfloat16"),
                weights="as_trained", merged_folder=False, merged_from_4bit=False)
    settings = Settings(
        labels=RunLabels(model="tiny", variant="base", decoding=name, replicate=0), base_model=str(base), load=load,
        decoding=Decoding(settings={"do_sample": True, "top_k": 50, "temperature": 0.8, "max_new_tokens": 16},
                          defaults="library", sweep=None),
        batch_size=4, seed=0, device="cuda",
    )
    # As the rule gives them (rules/generate.smk): its settings as a mapping, its named inputs and outputs.
    job = {"rule": "generate", "threads": 2, "named": {
        "input": {"test": str(test), "base": [], "adapter": []},
        "output": {"predictions": str(out), "info": str(tmp / f"{name}.info.json")},
        "log": {"log": str(log)},
        "resources": {"gpu": 0},
        "params": {"settings": as_mapping(settings)},
        "wildcards": {"model": "tiny", "variant": "base", "decoding": name, "rep": "0"},
    }}
    script = tmp / f"tmp{name}.generate.py"
    preamble = SNAKEMAKE_PREAMBLE.format(pids=str(pids), job=json.dumps(job))
    script.write_text(preamble + (SCRIPTS / "generate.py").read_text())
    return script, out, pids


def ran_in_fork(result, server_pid: int, out: dict) -> tuple[bool, str]:
    ok = result.returncode == 0 and "runs cold" not in result.stderr and out.get("ppid") == server_pid
    return ok, out if ok else f"rc {result.returncode}, {out}, stderr: {result.stderr[-1500:]}"


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lmsweep-warm-gpu-"))
    probe = python("import torch; print(torch.__version__, torch.cuda.is_available())")
    print("torch:", probe.stdout.strip() or probe.stderr[-500:])

    # The server's own steps, in a fresh process: preload, then the CUDA check.
    fresh = last_json(python("""
        import json, sys
        from lmsweep.runtime import warm_server
        warm_server.preload()
        import torch
        print(json.dumps({"initialized": torch.cuda.is_initialized(), "problem": warm_server.cuda_problem(),
                          "bitsandbytes_hidden": sys.modules.get("bitsandbytes", "absent") is None}))
    """))
    check("the real preload leaves CUDA untouched", fresh.get("initialized") is False and "problem" in fresh
          and fresh["problem"] is None and fresh.get("bitsandbytes_hidden") is True, fresh)

    from lmsweep import tiny
    from lmsweep.data import validate
    from lmsweep.demo_data import make_tasks
    from lmsweep.io import read_jsonl, write_jsonl
    from lmsweep.prompts import format_prompt
    from lmsweep.settings import Build

    records, _ = validate(make_tasks(80, seed=0))
    write_jsonl(tmp / "test.jsonl", records[:8])
    base = tmp / "base"
    spec = Build(architecture="llama", vocab_size=512, hidden_size=256, intermediate_size=1024, num_layers=2,
                 num_heads=4, max_position_embeddings=512)
    tiny.build(spec, [format_prompt(r) + r["output"] for r in records], seed=0, out_dir=base)

    socket_path = tmp / "socket"
    log = tmp / "warm_start.log"
    with open(log, "w") as stream:
        server = subprocess.Popen([sys.executable, str(SCRIPTS / "lmsweep" / "runtime" / "warm_server.py"),
                                   str(socket_path), str(os.getpid())], env=ENV, stdout=stream, stderr=subprocess.STDOUT)
    try:
        start = time.monotonic()
        while not socket_path.exists() and server.poll() is None and time.monotonic() - start < 300:
            time.sleep(0.2)
        up = socket_path.exists() and server.poll() is None
        check("the real server comes up", up, f"{time.monotonic() - start:.1f} s; log: {log.read_text()[-1500:]}")
        if not up:
            return 1

        cuda_job = job_file(tmp, "cuda_job", CUDA_JOB)
        result = finish(start_client(cuda_job, socket_path, tmp))
        out = last_json(result)
        ok, detail = ran_in_fork(result, server.pid, out)
        check("a CUDA job in a fork of the server", ok and out["bad_fork"] is False and out["initialized"] is False
              and 1500 < out["value"] < 2600, detail)

        clients = [start_client(cuda_job, socket_path, tmp) for _ in range(2)]
        both = [finish(c) for c in clients]
        oks = [ran_in_fork(r, server.pid, last_json(r)) for r in both]
        check("two CUDA jobs at once", all(ok for ok, _ in oks), [d for _, d in oks])

        for name, load_in_4bit in (("qlora_4bit", True), ("bf16", False)):
            script, out_path, pids = generate_job(tmp, name, base, tmp / "test.jsonl", load_in_4bit)
            start = time.monotonic()
            result = finish(start_client(script, socket_path, tmp))
            seconds = time.monotonic() - start
            runs = [tuple(map(int, line.split())) for line in pids.read_text().splitlines()] if pids.exists() else []
            job_log = (tmp / f"{name}.log").read_text()[-1500:] if (tmp / f"{name}.log").exists() else ""
            ok = (result.returncode == 0 and "runs cold" not in result.stderr
                  and [ppid for _, ppid in runs] == [os.getpid(), server.pid]
                  and len(read_jsonl(out_path)) == 8)
            check(f"scripts/generate.py {name} through the server", ok,
                  f"{seconds:.1f} s" if ok else f"rc {result.returncode}, runs {runs}, stderr: "
                  f"{result.stderr[-1500:]}, log: {job_log}")

        result = finish(start_client(job_file(tmp, "bnb_job", BNB_JOB), socket_path, tmp))
        out = last_json(result)
        ok, detail = ran_in_fork(result, server.pid, out)
        check("a job that imports bitsandbytes runs a 4-bit layer on CUDA", ok and out["finite"]
              and out["quantized"] and out["transformers"] is True, detail)

        check("the server is still up and logged no error", server.poll() is None
              and "dropped" not in log.read_text(), log.read_text()[-1500:])
    finally:
        server.kill()
        server.wait(timeout=30)

    # Controls: the check that makes the server refuse to serve sees a process that touched CUDA.
    control = last_json(python("""
        import json, sys
        from lmsweep.runtime import warm_server
        import bitsandbytes
        print(json.dumps({"problem": warm_server.cuda_problem()}))
    """))
    check("control: after importing bitsandbytes the server would refuse", bool(control.get("problem")), control)
    env = {k: v for k, v in ENV.items() if k != "PYTORCH_NVML_BASED_CUDA_CHECK"}
    control = last_json(python("""
        import json, torch
        from lmsweep.runtime import warm_server
        available = torch.cuda.is_available()
        print(json.dumps({"available": available, "initialized": torch.cuda.is_initialized(),
                          "problem": warm_server.cuda_problem()}))
    """, env=env))
    check("control: is_available() through the CUDA driver makes forks bad, and the check sees it",
          control.get("available") is True and bool(control.get("problem")), control)
    env["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    control = last_json(python("""
        import json, torch
        from lmsweep.runtime import warm_server
        print(json.dumps({"available": torch.cuda.is_available(), "problem": warm_server.cuda_problem()}))
    """, env=env))
    check("the same with PYTORCH_NVML_BASED_CUDA_CHECK=1 (as the server sets it) leaves forks good",
          control.get("available") is True and "problem" in control and control["problem"] is None, control)

    passed = all(results)
    print("PASS" if passed else "FAIL", f"({sum(results)} of {len(results)} checks)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

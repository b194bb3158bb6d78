"""A digest of the lmsweep code each step runs, so that an edit of it reruns exactly the steps it affects.

Snakemake's `code` rerun trigger hashes the file a rule's `script:` names,
scripts/<rule>.py, which is a thin adapter: the logic it runs lives in the
rule's step, lmsweep/steps/<rule>.py, and what that imports, which Snakemake
does not see. Each rule therefore gets a `code` param: {module: digest} of
its step module and every lmsweep module the step imports, directly or
through other lmsweep modules, lazily inside a function or at the top (found
in the source, not by importing it: this runs while Snakemake reads the
workflow, on every invocation, and imports no library).

A module's digest is over its syntax tree with docstrings dropped
(ast.unparse of the parsed source), so that comments, docstrings and
formatting change nothing, and any change of what the code does reruns the
steps that run it. The modules that decide where and how a job runs, never
what it computes (RUNTIME: lmsweep.runtime, the job's launch, the warm fork
server, the GPU claims, the logs), are left out: their results are tested to
be the same either way.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = "lmsweep"
# Process management only: a job's numbers are the same whether it ran forked or cold, on which GPU
# (tests/runtime/test_warm.py, tests/runtime/test_gpus.py).
RUNTIME = frozenset({"lmsweep.runtime"})


def _module_file(root: Path, name: str) -> Path | None:
    """The source file of module `name` (lmsweep.x.y) under `root` (the folder holding lmsweep/)."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST, root: Path) -> set:
    """The lmsweep modules a syntax tree imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from lmsweep import stats` imports the module lmsweep.stats; `from lmsweep.x import f`, lmsweep.x
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                parts = name.split(".")
                # the module and every package above it (importing lmsweep.a.b runs lmsweep/a/__init__.py)
                for depth in range(1, len(parts) + 1):
                    module = ".".join(parts[:depth])
                    if _module_file(root, module) is not None:
                        found.add(module)
    return found


@lru_cache(maxsize=None)
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def normalized(tree: ast.Module) -> str:
    """The code without its docstrings, comments and formatting."""
    tree = ast.parse(ast.unparse(tree))  # a copy
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


@lru_cache(maxsize=None)
def module_digest(path: Path) -> str:
    return hashlib.sha256(normalized(_parsed(path)).encode()).hexdigest()[:16]


def modules_of(step: str, root: Path) -> list:
    """The module `step` (lmsweep.steps.<rule>) and every lmsweep module it runs, its imports followed
    through the package (RUNTIME left out)."""
    if _module_file(root, step) is None:
        raise ValueError(f"no module {step} under {root}")
    seen, todo = set(), [step]
    while todo:
        module = todo.pop()
        if module in seen or is_runtime(module):
            continue  # a runtime module's own imports are not followed either: they run to launch, not to compute
        seen.add(module)
        todo += sorted(_imported(_parsed(_module_file(root, module)), root) - seen)
    return sorted(seen)


def is_runtime(module: str) -> bool:
    return any(module == r or module.startswith(r + ".") for r in RUNTIME)


def rule_code(rule: str, root) -> dict:
    """{module: digest} of the lmsweep code that rule `rule` runs (root: the folder holding lmsweep/, that
    is scripts/): the rule's `code` param."""
    root = Path(root).resolve()
    modules = modules_of(f"{PACKAGE}.steps.{rule}", root)
    return {module: module_digest(_module_file(root, module)) for module in modules}

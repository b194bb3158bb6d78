"""The benchmarks' tests: lmsweep (scripts/) importable however pytest was started.

pyproject.toml's `pythonpath = ["scripts"]` applies when pytest's rootdir is the repository's root; this
does the same from anywhere else. The benches themselves (bench/*.py) run as scripts from bench/.
"""

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

"""Both reports render in a real browser (Debian's headless Chromium), not only exist."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, snakemake

pytestmark = pytest.mark.workflow

CHROMIUM = shutil.which("chromium")
# Where screenshots are kept for a person to look at after the run (ignored by git).
SCREENSHOTS = REPO / "test-output"

PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => (i.complete ? i.naturalWidth : 0));
  document.body.setAttribute('data-probe', JSON.stringify({
    tables: document.querySelectorAll('table').length,
    rows: document.querySelectorAll('tr').length,
    images: imgs,
  }));
});
</script>"""


def chromium(*args, tmp_path) -> subprocess.CompletedProcess:
    assert CHROMIUM, "Chromium is not installed (apt-get install chromium); .ci/run installs it"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=True)


def keep_screenshot(path: Path, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    shutil.copy2(path, SCREENSHOTS / name)


def assert_not_blank(png: Path) -> None:
    from matplotlib.image import imread

    pixels = imread(png)
    assert pixels.shape[0] > 500 and pixels.std() > 0.05, "the screenshot is blank"


def test_lmsweep_report_renders_its_tables_and_plots(demo_run, tmp_path):
    html = (demo_run / "demo" / "results" / "report" / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html), "the report must not load anything from the network"
    probed = tmp_path / "report.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", probed.as_uri(), tmp_path=tmp_path).stdout
    probe = json.loads(re.search(r"data-probe=\"([^\"]*)\"", dom).group(1).replace("&quot;", '"'))
    assert probe["tables"] >= 8 and probe["rows"] > 60
    # three decoding sweeps, cost against quality, the adapters' quality against their cost, three models' loss curves
    assert len(probe["images"]) == 8 and all(width > 500 for width in probe["images"]), probe["images"]
    for text in ("The answers", "has the best BLEU", "Model comparison", "tiny_mistral", "Decoding sweep: temperature",
                 "Cost against quality", "How each adaptation setting matters", "What each adapter cost", "Runtime",
                 "Metric signatures"):
        assert text in dom
    png = tmp_path / "report.png"
    chromium("--window-size=1280,3000", f"--screenshot={png}", probed.as_uri(), tmp_path=tmp_path)
    assert_not_blank(png)
    keep_screenshot(png, "lmsweep-report.png")


def test_snakemake_report_has_our_categories_and_renders(demo_run, tmp_path):
    proc = snakemake(demo_run, "--report", "results/snakemake-report.html")
    assert "Report created" in proc.stdout + proc.stderr
    # it packages the results as they are, and says so
    assert "--report packages the results as they are now: it reruns nothing" in proc.stderr
    report = demo_run / "demo" / "results" / "snakemake-report.html"
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", report.as_uri(), tmp_path=tmp_path).stdout
    for category in ("Scores", "Sweeps", "Training", "Adaptation", "Runtime"):
        assert f"<span>{category}</span>" in dom, f"category {category} not rendered"
    assert "Statistics" in dom and "held-out test split" in dom  # runtime statistics and reports/workflow.rst
    png = tmp_path / "snakemake-report.png"
    chromium("--virtual-time-budget=10000", "--window-size=1280,900", f"--screenshot={png}", report.as_uri(),
             tmp_path=tmp_path)
    assert_not_blank(png)
    keep_screenshot(png, "snakemake-report.png")

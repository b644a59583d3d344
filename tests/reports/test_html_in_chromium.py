"""The HTML report as a browser shows it: headless Chromium, offline, every plot decoded.

A copy of the report gets a small script that marks, after load, which images decoded
(`complete` and `naturalWidth > 0`); `--dump-dom` returns that mark. A full-page screenshot is
taken too and must not be blank. `make setup` installs Chromium (Debian package `chromium`).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

from tst_bench.reports import write_report

from .conftest import with_measurements

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const states = [...document.images].map((img) => (img.complete && img.naturalWidth > 0 ? "ok" : "broken"));
  document.body.setAttribute("data-images", states.join(","));
});
</script>"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (`make setup` or `apt-get install -y chromium`)"
)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None  # the module is skipped without it
    profile.mkdir()
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(profile)},
    )


@pytest.fixture(scope="module")
def full_report(recorded, tmp_path_factory):
    """A report with every kind of plot: the run directory plus a benchmark JSON with measurements."""
    root = tmp_path_factory.mktemp("browser")
    measured = with_measurements(recorded, root / "measured.json", retained_mib=600)
    return write_report([recorded.run_dir, measured], root / "reports")


def image_states(html: str, tmp_path: Path) -> list[str]:
    """'ok' or 'broken' for every <img> of `html`, as headless Chromium loaded them."""
    page = tmp_path / "checked.html"
    page.write_text(html.replace("</body>", IMAGE_CHECK + "</body>"))
    completed = chromium(tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", page.as_uri())
    assert completed.returncode == 0, completed.stderr[-2000:]
    states = re.search(r'data-images="([^"]*)"', completed.stdout)
    assert states is not None, completed.stdout[-2000:]
    return states.group(1).split(",")


def test_every_plot_renders_in_headless_chromium(full_report, tmp_path):
    assert len(full_report.figures) == 7  # verdict + run (folds, bias) + JSON (folds, bias, speedup, memory)
    assert image_states(full_report.html.read_text(), tmp_path) == ["ok"] * 7


def test_the_check_sees_a_broken_plot(full_report, tmp_path):
    html = full_report.html.read_text()
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = html[:start] + "AAAA" + html[start + 4 :]
    assert image_states(broken, tmp_path) == ["broken"] + ["ok"] * 6


def test_screenshot_shows_the_report(full_report, tmp_path):
    screenshot = full_report.html.parent / "report-screenshot.png"
    completed = chromium(
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1280,6000",
        full_report.html.as_uri(),
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    pixels = imread(screenshot)
    assert pixels.shape[:2] == (6000, 1280)
    top = pixels[:3000]
    assert top.std() > 0.05  # text, tables and plots, not a blank page
    plot_blue = (abs(top[..., 0] - 0x4C / 255) < 0.02) & (abs(top[..., 2] - 0xB0 / 255) < 0.02)
    assert plot_blue.sum() > 1000  # the TsT bars of the verdict and fold plots are on screen
    keep = os.environ.get("TST_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(screenshot, keep)

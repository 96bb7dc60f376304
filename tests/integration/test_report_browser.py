"""The HTML report opened in a real headless Chromium: the figures decode and show on the page.

Two checks, each against a control that must fail them:
- the DOM: a copy of the report with a one-line script that records each image's
  decoded width, dumped with --dump-dom: every <img> decoded to its PNG's width;
- the screenshot: the figures' own colours (the leaky run's red, the fixed run's
  blue) cover a visible share of the page's pixels; with the images broken, none.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from harness.report import document as render
from harness.storage import Run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium); the report is not opened in a browser",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# matplotlib's tab:red, tab:blue and tab:orange: leaky runs, fixed runs (and CNN), fully-connected-only.
# Only the figures use them; the page's text and tables are black and grey.
RED, BLUE, ORANGE = (0.839, 0.153, 0.157), (0.122, 0.467, 0.706), (1.0, 0.498, 0.055)
DECODE_PROBE = (
    "<script>addEventListener('load', () => { document.body.dataset.decoded = "
    "[...document.images].map(i => i.complete ? i.naturalWidth : -1).join(','); });</script>"
)


@pytest.fixture(scope="module")
def report_dir(fixture_runs: list[Run], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the fixture runs."""
    out = tmp_path_factory.mktemp("browser")
    render.write_report(fixture_runs, out)
    return out


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a throwaway profile; fail the test with its stderr if it fails."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def png_width(data: bytes) -> int:
    """The width in a PNG's IHDR chunk."""
    return struct.unpack(">I", data[16:20])[0]


def broken(html: str) -> str:
    """The page with every image's data cut, so nothing can decode: the control."""
    return re.sub(r'src="data:image/png;base64,[^"]+"', 'src="data:image/png;base64,AAAA"', html)


def decoded_widths(page: Path, profile: Path) -> list[int]:
    """Each <img>'s natural width after load, as the probe script wrote it into the dumped DOM."""
    dom = chromium(["--virtual-time-budget=5000", "--dump-dom", page.as_uri()], profile).stdout
    match = re.search(r'data-decoded="([^"]*)"', dom)
    assert match, "the probe script did not run"
    return [int(w) for w in match.group(1).split(",")]


def test_every_figure_decodes_in_the_browser(report_dir: Path, tmp_path: Path) -> None:
    # GIVEN the report with a probe that records each image's decoded width
    html = (report_dir / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", DECODE_PROBE + "</body>"))
    # WHEN Chromium loads it and dumps the DOM
    widths = decoded_widths(probed, tmp_path / "profile")
    # THEN every figure decoded to the width of its PNG, in order
    expected = [png_width(p.read_bytes()) for p in render_order(report_dir, html)]
    assert widths == expected and min(widths) > 300
    # AND the control: with the image data cut, none decodes
    control = tmp_path / "control.html"
    control.write_text(broken(html).replace("</body>", DECODE_PROBE + "</body>"))
    assert set(decoded_widths(control, tmp_path / "profile2")) == {0}


def render_order(report_dir: Path, html: str) -> list[Path]:
    """The figure files in the order the page shows them (each <figure> has the file's stem as id)."""
    return [report_dir / f"{name}.png" for name in re.findall(r'<figure id="([^"]+)"', html)]


def colour_share(image: np.ndarray, colour: tuple[float, float, float]) -> float:
    """Share of the pixels within 0.06 of ``colour`` in every channel."""
    return float((np.abs(image[..., :3] - np.array(colour)) < 0.06).all(axis=-1).mean())


def test_the_screenshot_shows_the_figures(report_dir: Path, tmp_path: Path) -> None:
    # WHEN Chromium takes a screenshot of the top 3000 px of the report
    shot = tmp_path / "shot.png"
    chromium(
        [
            f"--screenshot={shot}",
            "--window-size=1200,3000",
            (report_dir / "report.html").as_uri(),
        ],
        tmp_path / "p1",
    )
    image = imread(shot)
    # THEN the page is not blank, and the figures' colours are on it: the leak's red line (thin, so a
    # few hundred pixels), the fixed runs' blue and the fc-only orange (lines and bars, thousands)
    assert image.shape[:2] == (3000, 1200)
    non_white = float((image[..., :3] < 0.95).any(axis=-1).mean())
    assert non_white > 0.03, f"only {non_white:.1%} of the page is not white"
    shares = [colour_share(image, colour) for colour in (RED, BLUE, ORANGE)]
    assert shares[0] > 0.0001 and shares[1] > 0.001 and shares[2] > 0.001, shares
    # AND the control: the same page with broken images shows its text, but none of those colours
    control = tmp_path / "control.html"
    control.write_text(broken((report_dir / "report.html").read_text()))
    control_shot = tmp_path / "control.png"
    chromium(
        [f"--screenshot={control_shot}", "--window-size=1200,3000", control.as_uri()],
        tmp_path / "p2",
    )
    control_image = imread(control_shot)
    assert float((control_image[..., :3] < 0.95).any(axis=-1).mean()) > 0.01  # the text did render
    assert max(colour_share(control_image, colour) for colour in (RED, BLUE, ORANGE)) < 0.00001

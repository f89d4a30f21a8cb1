"""A rendered report in headless Chromium at 1400 px: no horizontal page scroll (wide tables scroll
in their own box), captioned strips. Skipped, with the reason, where no Chromium can start (CI
images without Debian's `chromium` package)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_harness_report import SPEC, write_runs  # the results-contract fixture (same tests dir)

from harness.records import RunState
from harness.report import render_report
from harness.specfile import parse_spec
from harness.store import read_result, write_result

# the page reports its layout in its title once loaded: document width, window width, and how many
# of the tables scroll inside their own box
PROBE = (
    "<script>window.addEventListener('load', () => { const wide = [...document.querySelectorAll('.wide')]; "
    "document.title = ['layout', document.documentElement.scrollWidth, window.innerWidth, "
    "wide.filter(e => e.scrollWidth > e.clientWidth).length].join(' '); });</script>"
)


def chromium() -> str:
    exe = next(
        (
            shutil.which(n)
            for n in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(n)
        ),
        None,
    )
    if exe is None:
        pytest.skip("no headless Chromium on this machine (Debian: apt-get install chromium)")
    return exe


def layout(exe: str, page: Path, width: int = 1400) -> tuple[int, int, int]:
    """(document scroll width, window width, tables scrolling in their box) of `page` at `width` px."""
    try:
        done = subprocess.run(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--window-size={width},1000",
                "--virtual-time-budget=5000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"Chromium could not start here: {exc}")
    found = re.search(r"<title>layout (\d+) (\d+) (\d+)</title>", done.stdout)
    if found is None:
        pytest.skip(
            f"Chromium could not start here (exit {done.returncode}): {done.stderr.strip()[-300:]}"
        )
    return int(found[1]), int(found[2]), int(found[3])


def test_report_fits_1400_px_without_page_scroll(tmp_path: Path) -> None:
    exe = chromium()
    ids = write_runs(tmp_path / "runs")
    pdir = tmp_path / "runs" / "timestep_shift" / "smoke"
    for rid in (
        ids
    ):  # 30 metrics per run: a results table far wider than the page (VBench's 16 dimensions)
        result = read_result(pdir / rid)
        if result.state == RunState.DONE:
            result.metrics.update({f"a_long_dimension_name_{i:02d}": 0.1 * i for i in range(30)})
            write_result(tmp_path / "runs", pdir / rid, result)
    md = render_report(parse_spec(SPEC), tmp_path / "runs", "smoke", tmp_path / "report")
    html = (md.parent / "report.html").read_text()
    assert "row 1:" in html or "<figcaption>train.shift=1" in html  # every strip has its caption
    page = md.parent / "probe.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    doc, window, scrolling = layout(exe, page)
    assert window == 1400
    assert doc <= window, (
        f"the page scrolls sideways: document {doc} px wide in a {window} px window"
    )
    assert scrolling >= 1  # the wide results table scrolls inside its box instead
    # the same table without its box does overflow the page: the probe can see a failure
    bare = md.parent / "bare.html"
    bare.write_text(
        html.replace("<div class='wide'>", "<div>").replace("</body>", PROBE + "</body>")
    )
    assert layout(exe, bare)[0] > 1400

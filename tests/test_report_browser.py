"""The HTML report in a real browser: every image and the video load (headless Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from test_render import explained  # noqa: F401 — the shared fixture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """<!DOCTYPE html><html><body><iframe id="r" src="{report}" width="1000" height="800">
</iframe><script>
const frame = document.getElementById("r");
frame.onload = () => {{
  const doc = frame.contentDocument;
  const video = doc.querySelector("video");
  const check = () => {{
    const images = [...doc.images];
    const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
    const result = `images=${{images.length}} broken=${{broken}} ` +
      `video=${{video ? video.readyState : -1}} error=${{video && video.error ? 1 : 0}} ` +
      `width=${{video ? video.videoWidth : 0}}`;
    document.body.setAttribute("data-result", result);
  }};
  if (video && video.readyState < 1) {{
    video.addEventListener("loadedmetadata", check);
    video.addEventListener("error", check);
    video.load();
  }} else {{ check(); }}
}};
</script></body></html>"""


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not found; `make test` installs Debian's chromium where apt-get can",
)
def test_report_images_and_video_load_in_headless_chromium(explained, tmp_path):  # noqa: F811
    _, out, _ = explained
    probe = tmp_path / "probe.html"
    probe.write_text(PROBE.format(report=(out / "report.html").as_uri()))
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--allow-file-access-from-files",
            f"--user-data-dir={tmp_path / 'u'}",
            "--autoplay-policy=no-user-gesture-required",
            "--virtual-time-budget=15000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'data-result="([^"]*)"', result.stdout)
    assert match, f"no result from the page: {result.stderr[-2000:]}"
    fields = dict(kv.split("=") for kv in match.group(1).split())
    assert fields["images"] == "4" and fields["broken"] == "0", fields
    assert fields["error"] == "0" and int(fields["video"]) >= 1 and int(fields["width"]) > 0, fields

"""The HTML report in a real browser (headless Chromium): every image and the video load, and the
frame chart is linked to the video (a click on a bar seeks it, the cursor follows playback)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from test_render import explained, frame_starts  # noqa: F401 — the shared fixture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not found; `make test` installs Debian's chromium where apt-get can",
)

# The probes load the report in an iframe and write what they saw into data-result, which
# `--dump-dom` prints once the page settles.
LOADS = """<!DOCTYPE html><html><body><iframe id="r" src="{report}" width="1400" height="900">
</iframe><script>
const frame = document.getElementById("r");
frame.onload = () => {{
  const doc = frame.contentDocument;
  const video = doc.querySelector("video");
  const check = () => {{
    const images = [...doc.images];
    const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
    const narrow = images.filter(i => i.closest(".frames") && i.naturalWidth < 640).length;
    const result = `images=${{images.length}} broken=${{broken}} narrow=${{narrow}} ` +
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

SEEKS = """<!DOCTYPE html><html><body><iframe id="r" src="{report}" width="1400" height="900">
</iframe><script>
const frame = document.getElementById("r");
let finished = false;
const done = (text, last = true) => {{
  document.body.setAttribute("data-result", text);
  finished = last;
}};
// Virtual time stands still while a script runs, and races ahead while the page idles: keep
// the page busy in short bursts, so that the video's decoder threads get real time to load,
// seek and play in before the budget runs out.
const busy = setInterval(() => {{
  if (finished) {{ clearInterval(busy); return; }}
  let x = 0;
  for (let i = 0; i < 4e6; i++) x += i % 7;
  frame.dataset.spin = x;
}}, 10);
frame.onload = () => {{
  const doc = frame.contentDocument;
  const video = doc.getElementById("heatmap");
  const cursor = () => doc.getElementById("cursor").getAttribute("data-frame");
  const bars = doc.querySelectorAll("#frame-chart rect[data-frame]").length;
  const played = () => {{  // play a little from the seek, pause, and see where the cursor is
    video.addEventListener("pause", () => setTimeout(() => done(
      `${{done.seek}} played=${{video.currentTime}} playcursor=${{cursor()}}`), 100),
      {{once: true}});
    video.addEventListener("timeupdate", function stop() {{
      if (video.currentTime > {seek} + 0.2) {{
        video.removeEventListener("timeupdate", stop);
        video.pause();
      }}
    }});
    video.play().catch(error => done(`${{done.seek}} played=-1 playerror=${{error.name}}`));
  }};
  const go = () => {{
    video.addEventListener("seeked", () => {{
      done.seek = `bars=${{bars}} time=${{video.currentTime}} cursor=${{cursor()}} ` +
        `paused=${{video.paused ? 1 : 0}}`;
      done(done.seek, false);
      played();
    }}, {{once: true}});
    const bar = doc.querySelector('#frame-chart rect[data-frame="{k}"]');
    bar.dispatchEvent(new MouseEvent("click", {{bubbles: true, cancelable: true}}));
  }};
  video.addEventListener("error", () => done("error=1"));
  if (video.readyState >= 3) go(); else video.addEventListener("canplay", go, {{once: true}});
  setTimeout(() => {{ if (!done.seek) done(`seeked=0 ready=${{video.readyState}}`); }}, 12000);
}};
</script></body></html>"""


def _chromium(probe: str, tmp_path) -> dict[str, str]:
    """Load ``probe`` (HTML) in headless Chromium; the ``key=value`` pairs it wrote."""
    page = tmp_path / "probe.html"
    page.write_text(probe)
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
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'data-result="([^"]*)"', result.stdout)
    assert match, f"no result from the page: {result.stderr[-2000:]}"
    return dict(kv.split("=", 1) for kv in match.group(1).split())


@needs_chromium
def test_report_images_and_video_load_in_headless_chromium(explained, tmp_path):  # noqa: F811
    _, out, _ = explained
    fields = _chromium(LOADS.format(report=(out / "report.html").as_uri()), tmp_path)
    # 4 most relevant frames and the HOF, MBHx, MBHy and HOG heatmaps; the frame chart is an SVG
    assert fields["images"] == "8" and fields["broken"] == "0", fields
    assert fields["narrow"] == "0", fields  # the most relevant frames are ≥ 640 px wide
    assert fields["error"] == "0" and int(fields["video"]) >= 1 and int(fields["width"]) > 0, fields


@needs_chromium
def test_click_on_a_frame_bar_seeks_the_video_and_the_cursor_follows(
    explained,  # noqa: F811
    tmp_path,
):
    clip, out, _ = explained
    starts = frame_starts(clip)
    n = len(json.loads((out / "summary.json").read_text())["frame_relevance"])
    assert n == len(starts)
    k = (2 * n) // 3  # away from both ends, so that the clip plays on after it
    probe = SEEKS.format(report=(out / "report.html").as_uri(), k=k, seek=starts[k])
    fields = _chromium(probe, tmp_path)
    assert fields.get("error") != "1", fields
    assert fields.get("seeked") != "0", f"the click did not seek the video: {fields}"
    assert int(fields["bars"]) == n, fields
    # the seek lands inside frame k: within half a frame of the middle of the frame
    frame = starts[k + 1] - starts[k]
    assert abs(float(fields["time"]) - (starts[k] + frame / 2)) <= frame / 2, fields
    assert starts[k] < float(fields["time"]) < starts[k + 1], fields
    assert fields["cursor"] == str(k) and fields["paused"] == "1", fields  # the frame stays shown
    # played on from there, the cursor sits on the frame being shown
    played = float(fields.get("played", "-1"))
    assert played > starts[k], fields
    assert fields["playcursor"] == str(int(np.searchsorted(starts, played + 1e-6) - 1)), fields

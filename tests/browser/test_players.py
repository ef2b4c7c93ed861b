"""Our outputs in a real player: Debian's Chromium, headless, driven by Playwright, over a
Range-capable HTTP server on loopback; HLS through hls.js from npm. Nothing here is judged by
our own code: the browser decides whether a file plays, decodes and has the size it claims."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs import JobInput, run_job
from tests import media_factories as mf
from tests.browser import range_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Debian's Chromium (apt package ``chromium``, installed by ``scripts/bootstrap dev``).
CHROMIUM = Path("/usr/bin/chromium")
#: hls.js as ``npm ci`` in tests/browser installs it (``scripts/bootstrap dev``).
HLS_JS = Path(__file__).parent / "node_modules" / "hls.js" / "dist" / "hls.min.js"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--autoplay-policy=no-user-gesture-required"]
#: How long a page may take to load or play a file before the test gives up (a hang guard: the
#: assertions are about what the browser reports, never about how fast).
WAIT_MS = 30_000

PLAY = """async ([src, waitMs]) => {
  const v = document.createElement('video');
  v.muted = true; v.autoplay = true; v.playsInline = true; v.loop = true; v.src = src;
  document.body.appendChild(v);
  const guard = new Promise((_, reject) => setTimeout(() => reject(new Error('gave up')), waitMs));
  const failed = new Promise((_, reject) => v.addEventListener('error',
      () => reject(new Error('media error ' + (v.error && (v.error.code + ' ' + v.error.message))))));
  await Promise.race([new Promise(r => v.addEventListener('loadedmetadata', r)), failed, guard]);
  const meta = {width: v.videoWidth, height: v.videoHeight, duration: v.duration};
  const start = v.currentTime;
  await Promise.race([new Promise(r => { const tick = () => v.currentTime > start + 0.2 ? r()
      : requestAnimationFrame(tick); tick(); }), failed, guard]);
  meta.advanced = v.currentTime > start;
  v.remove();
  return meta;
}"""

DECODE = """async (src) => {
  const img = new Image(); img.src = src; await img.decode();
  return [img.naturalWidth, img.naturalHeight];
}"""

HLS_START = """(src) => {
  if (window.hls) { window.hls.destroy(); window.v.remove(); }
  window.fragLevels = []; window.fatal = [];
  const v = document.createElement('video'); v.muted = true; v.playsInline = true;
  document.body.appendChild(v); window.v = v;
  const hls = new Hls({capLevelToPlayerSize: false, startLevel: 0}); window.hls = hls;
  hls.on(Hls.Events.FRAG_LOADED, (_, d) => window.fragLevels.push(d.frag.level));
  window.subtitleFrags = [];
  hls.on(Hls.Events.SUBTITLE_FRAG_PROCESSED, (_, d) => window.subtitleFrags.push(d.success));
  window.errors = [];
  hls.on(Hls.Events.ERROR, (_, d) => { (d.fatal ? window.fatal : window.errors).push(d.details); });
  hls.loadSource(src); hls.attachMedia(v);
  return Hls.isSupported();
}"""

TRACK = """async ([video, vtt, waitMs]) => {
  const v = document.createElement('video'); v.muted = true; v.src = video;
  const t = document.createElement('track');
  t.kind = 'subtitles'; t.srclang = 'en'; t.src = vtt; t.default = true;
  v.appendChild(t); document.body.appendChild(v);
  const guard = new Promise((_, reject) => setTimeout(() => reject(new Error('gave up')), waitMs));
  await Promise.race([Promise.all([
      new Promise((r, j) => { t.addEventListener('load', r); t.addEventListener('error',
          () => j(new Error('track failed to load'))); }),
      new Promise(r => v.addEventListener('loadedmetadata', r))]), guard]);
  const cues = Array.from(t.track.cues).map(c => [c.startTime, c.endTime, c.text]);
  return {readyState: t.readyState, duration: v.duration, cues};
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every output a player meets, made by the real jobs: renditions and HLS of a spoken 320x240
    clip, its transcript and posters, a photo's variants and an animated GIF's videos and variants."""
    root = tmp_path_factory.mktemp("site")
    media = tmp_path_factory.mktemp("browser_media")
    talk = mf.speech_video(media, "talk.mp4", size=(320, 240))
    jobs = {
        "talk": [("transcode", {"hls": True, "renditions": [240, 144], "preset": "ultrafast"}),
                 ("transcript", {}), ("thumbnail", {"storyboard": False})],
        "photo": [("thumbnail", {})],
        "gif": [("thumbnail", {})],
    }
    sources = {"talk": talk, "photo": mf.photo(media, size=(1000, 700)), "gif": mf.screen_gif(media)}
    outputs: dict[str, list[Any]] = {}
    for name, runs in jobs.items():
        (root / name).mkdir()
        outputs[name] = []
        for job_type, params in runs:
            outputs[name] += run_job(job_type, JobInput(sources[name], root / name, params)).outputs
    # The same HLS before the transcript job has finished: no transcript.vtt next to it.
    shutil.copytree(root / "talk" / "hls", root / "untranscribed" / "hls")
    broken = root / "broken"
    broken.mkdir()
    data = bytearray((root / "talk" / "video_240p.mp4").read_bytes())
    data[:4096] = bytes(4096)  # the ftyp and moov boxes become zeros
    (broken / "zeroed.mp4").write_bytes(bytes(data))
    assert HLS_JS.exists(), "hls.js is missing: run scripts/bootstrap dev (npm ci in tests/browser)"
    shutil.copy(HLS_JS, root / "hls.min.js")
    (root / "index.html").write_text(
        '<!doctype html><html><head><meta charset="utf-8"><script src="/hls.min.js"></script>'
        "</head><body></body></html>"
    )
    return {"root": root, "outputs": outputs}


@pytest.fixture(scope="module")
def page(site: dict[str, Any]) -> Iterator[Any]:
    """A blank page of the served site in headless Chromium."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/bootstrap dev"
    with range_server.serve(site["root"]) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(base + "/index.html")
            yield page
        finally:
            browser.close()


def _seconds(stamp: str) -> float:
    """Seconds of a WebVTT timestamp (``mm:ss.ttt`` or ``hh:mm:ss.ttt``)."""
    parts = [float(p) for p in stamp.strip().split()[0].split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def _files(site: dict[str, Any], suffixes: tuple[str, ...]) -> list[tuple[str, Any]]:
    return [(f"/{group}/{out.name}", out) for group, outs in site["outputs"].items()
            for out in outs if out.name.endswith(suffixes) and "/" not in out.name]


def test_every_video_file_plays(site: dict[str, Any], page: Any) -> None:
    """Every MP4 rendition and the animation's MP4 and WebM load their metadata at the size they
    are named for and advance with muted autoplay."""
    files = _files(site, (".mp4", ".webm"))
    assert {url for url, _ in files} >= {"/talk/video_240p.mp4", "/talk/video_144p.mp4",
                                         "/gif/animation.mp4", "/gif/animation.webm"}
    for url, out in files:
        meta = page.evaluate(PLAY, [url, WAIT_MS])
        assert (meta["width"], meta["height"]) == (out.width, out.height), url
        if "rendition" in out.extra:
            assert meta["height"] == out.extra["rendition"] or meta["width"] == out.extra["rendition"]
        assert meta["advanced"], url


def test_a_broken_file_is_reported_as_not_playing(page: Any) -> None:
    """The harness itself catches a file Chromium cannot play (an MP4 whose header is zeroed)."""
    from playwright.sync_api import Error as PlaywrightError

    with pytest.raises(PlaywrightError, match="media error"):
        page.evaluate(PLAY, ["/broken/zeroed.mp4", WAIT_MS])


def test_hls_master_plays_every_level(site: dict[str, Any], page: Any) -> None:
    """hls.js accepts every level of the master playlist (CODECS Chromium supports), loads
    fragments of each, and playback advances."""
    assert page.evaluate(HLS_START, "/talk/hls/master.m3u8") is True
    page.wait_for_function("() => window.hls.levels.length > 0 || window.fatal.length > 0")
    levels = page.evaluate("() => window.hls.levels.map(l => [l.width, l.height, l.bitrate])")
    declared = (site["root"] / "talk" / "hls" / "master.m3u8").read_text().count("#EXT-X-STREAM-INF")
    assert len(levels) == declared == 2
    # Paused while levels are switched, so the short clip cannot end before every level loaded.
    for i in range(len(levels)):
        page.evaluate(f"() => {{ window.hls.currentLevel = {i}; }}")
        page.wait_for_function(f"() => window.fragLevels.includes({i}) || window.fatal.length > 0")
    page.evaluate("() => window.v.play()")
    page.wait_for_function("() => window.v.currentTime > 0.5 || window.fatal.length > 0")
    assert page.evaluate("() => window.fatal") == []
    assert sorted({(w, h) for w, h, _ in levels}) == [(192, 144), (320, 240)]


def test_hls_subtitles_rendition_is_the_transcript(site: dict[str, Any], page: Any) -> None:
    """hls.js offers the transcript as master_with_transcript.m3u8's subtitles track and loads its
    cues, each inside the video's duration, at the times the VTT gives."""
    assert page.evaluate(HLS_START, "/talk/hls/master_with_transcript.m3u8") is True
    page.wait_for_function("() => window.hls.subtitleTracks.length > 0 || window.fatal.length > 0")
    assert page.evaluate("() => window.hls.subtitleTracks.map(t => t.name)") == ["Transcript"]
    page.evaluate("() => { window.hls.subtitleDisplay = true; window.hls.subtitleTrack = 0; }")
    page.wait_for_function("() => window.subtitleFrags.length > 0 || window.fatal.length > 0")
    assert page.evaluate("() => window.subtitleFrags") == [True]
    page.wait_for_function("() => Array.from(window.v.textTracks).some(t => t.cues && t.cues.length)")
    cues = page.evaluate("""() => Array.from(window.v.textTracks).filter(t => t.cues && t.cues.length)
        .flatMap(t => Array.from(t.cues).map(c => [c.startTime, c.endTime]))""")
    duration = page.evaluate("() => window.v.duration")
    vtt = (site["root"] / "talk" / "transcript.vtt").read_text()
    assert len(cues) == vtt.count(" --> ")
    for start, end in cues:
        assert 0 <= start < end <= duration, (start, end, duration)
    # Cue times land where the VTT puts them (no shift by an MPEG-TS offset).
    written = sorted(_seconds(t) for line in vtt.splitlines() if " --> " in line
                     for t in line.split(" --> ")[:2])
    assert sorted(t for cue in cues for t in cue) == pytest.approx(written, abs=0.15)


def test_hls_plays_before_the_transcript_exists(page: Any) -> None:
    """Before the transcript job has stored its VTT, master.m3u8 offers no subtitles and plays
    (hls.js 1.7 stops with a fatal fragLoadError when a selected subtitles rendition is missing,
    which is why master_with_transcript.m3u8 is a separate playlist)."""
    assert page.evaluate(HLS_START, "/untranscribed/hls/master.m3u8") is True
    page.wait_for_function("() => window.hls.levels.length > 0 || window.fatal.length > 0")
    assert page.evaluate("() => window.hls.subtitleTracks.length") == 0
    page.evaluate("() => window.v.play()")
    page.wait_for_function("() => window.v.currentTime > 0.5 || window.fatal.length > 0")
    assert page.evaluate("() => window.fatal") == []

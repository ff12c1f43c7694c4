"""Open a report in headless Chromium (DevTools protocol), check every figure rendered, screenshot it.

Used by the browser test and by `msdiversity report --check`. Chromium runs offline-only flags
(no background networking, no component updates, a throw-away profile), so a report that needs the
network to render shows up as missing figures or console errors.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

_WAIT_JS = """
new Promise(resolve => {
  const t0 = Date.now();
  (function poll() {
    const divs = [...document.querySelectorAll('.plotly-graph-div')];
    const ok = divs.filter(d => d.querySelector('svg.main-svg') && d._fullLayout && (d.data || []).length > 0);
    if ((divs.length && ok.length === divs.length && document.readyState === 'complete') || Date.now() - t0 > %d) {
      resolve(JSON.stringify({ids: divs.map(d => d.id), rendered: ok.map(d => d.id),
                              plotly: typeof Plotly !== 'undefined' ? Plotly.version : null,
                              height: document.documentElement.scrollHeight,
                              external: [...document.querySelectorAll('script[src],link[href],img[src]')]
                                 .map(e => e.src || e.href).filter(u => u && !u.startsWith('data:'))}));
    } else { setTimeout(poll, 100); }
  })();
})
"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable ($MSD_CHROMIUM first), or None."""
    env = os.environ.get("MSD_CHROMIUM")
    if env and Path(env).exists():
        return env
    for c in CANDIDATES:
        p = shutil.which(c)
        if p:
            return p
    return None


@dataclass
class BrowserCheck:
    figure_ids: list[str]
    rendered_ids: list[str]
    console_errors: list[str]
    external_resources: list[str]
    plotly_version: str | None
    screenshot: Path | None
    page_height: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [i for i in self.figure_ids if i not in self.rendered_ids]

    @property
    def ok(self) -> bool:
        return bool(self.figure_ids) and not self.missing and not self.console_errors and not self.external_resources


class _CDP:
    """Minimal DevTools-protocol client over one page websocket."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self._conn = connect(ws_url, max_size=None, open_timeout=20)
        self.ws = self._conn.__enter__()  # websockets >= 15 wants the context-manager protocol
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, name: str, timeout: float = 60.0) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == name:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("method") == name:
                return msg
            self.events.append(msg)

    def close(self):
        self._conn.__exit__(None, None, None)


def _console_errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + (d.get("exception", {}).get("description") or d.get("text", "?")))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            en = p["entry"]
            out.append(f"log error ({en.get('source')}): {en.get('text')} {en.get('url', '')}".strip())
    return out


def check_report(path: str | Path, screenshot: str | Path | None = None, *, chromium: str | None = None,
                 width: int = 1400, height: int = 900, timeout: float = 90.0,
                 tile_height: int | None = None) -> BrowserCheck:
    """Load `path` in headless Chromium; return which figures rendered and the console errors.

    `screenshot` gets the whole page; with `tile_height`, also `<stem>.NN.png` tiles of that height
    (readable at full resolution). Raises FileNotFoundError when no Chromium is installed (callers skip/explain).
    """
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium/Chrome executable found (tried $MSD_CHROMIUM, " + ", ".join(CANDIDATES) + ")")
    path = Path(path).resolve()
    profile = tempfile.mkdtemp(prefix="msd-chromium-")
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--disable-default-apps", "--mute-audio", f"--user-data-dir={profile}", "--remote-debugging-port=0",
            f"--window-size={width},{height}", "about:blank"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    port: list[int] = []
    ready = threading.Event()

    def _drain():
        for line in proc.stderr:  # keep reading so Chromium never blocks on a full pipe
            lines.append(line.rstrip())
            if "DevTools listening on ws://" in line and not port:
                port.append(int(line.split("ws://")[1].split("/")[0].rsplit(":", 1)[1]))
                ready.set()
        ready.set()

    threading.Thread(target=_drain, daemon=True).start()
    cdp = None
    try:
        if not ready.wait(timeout) or not port:
            raise RuntimeError("Chromium did not start its DevTools endpoint: " + " | ".join(lines[-5:]))
        with urllib.request.urlopen(f"http://127.0.0.1:{port[0]}/json/list", timeout=20) as r:
            targets = json.loads(r.read())
        page = next(t for t in targets if t.get("type") == "page")
        cdp = _CDP(page["webSocketDebuggerUrl"])
        for m in ("Runtime.enable", "Log.enable", "Page.enable"):
            cdp.call(m)
        cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        cdp.call("Page.navigate", url=path.as_uri())
        cdp.wait_event("Page.loadEventFired", timeout=timeout)
        res = cdp.call("Runtime.evaluate", expression=_WAIT_JS % int(timeout * 1000 * 0.6), awaitPromise=True,
                       returnByValue=True, timeout=timeout)
        info = json.loads(res["result"]["value"])
        shot = None
        if screenshot is not None:
            shot = Path(screenshot)
            shot.parent.mkdir(parents=True, exist_ok=True)
            full_h = min(int(info.get("height") or height), 16000)
            data = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": width, "height": full_h, "scale": 1}, timeout=timeout)
            shot.write_bytes(base64.b64decode(data["data"]))
            for i, y0 in enumerate(range(0, full_h, tile_height or full_h + 1) if tile_height else []):
                tile = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                clip={"x": 0, "y": y0, "width": width, "height": min(tile_height, full_h - y0),
                                      "scale": 1}, timeout=timeout)
                shot.with_suffix(f".{i:02d}.png").write_bytes(base64.b64decode(tile["data"]))
        # Drain events that arrived after the figures rendered.
        cdp.call("Runtime.evaluate", expression="1")
        return BrowserCheck(figure_ids=info["ids"], rendered_ids=info["rendered"],
                            console_errors=_console_errors(cdp.events), external_resources=info["external"],
                            plotly_version=info["plotly"], screenshot=shot, page_height=int(info.get("height") or 0))
    finally:
        if cdp is not None:
            try:
                cdp.close()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(profile, ignore_errors=True)

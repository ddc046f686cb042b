#!/usr/bin/env python3
"""Opens a page in headless Chromium (Debian's `chromium`) over the DevTools protocol and tells
what a person would see, as JSON on stdout:

    browser.py URL [--watch SECONDS] [--screenshot PATH] [--offline]

  samples   what the page's `window.seen` held, read every half second for SECONDS
  texts     the text of the elements with ids done, items, rows, map-ok, map-failed,
            map-pending, eta, mode, how many charts (.uplot) are drawn, and where their y axes start
            (y_min)
  requests  every URL the page asked for (with --offline the network is cut first)
  errors    uncaught script errors

The window is 1280×800; --screenshot writes a PNG of it.
"""
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client (PyPI)

IDS = ["done", "items", "rows", "map-ok", "map-failed", "map-pending", "eta", "mode", "knee",
       "steps"]


class Page:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self.ws.settimeout(max(0.1, deadline - time.time()))
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--watch", type=float, default=0.0)
    parser.add_argument("--screenshot")
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args()
    profile = tempfile.mkdtemp(prefix="ringscrape-chromium-")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    browser = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1280,800",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in browser.stderr:
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                port = found.group(1)
                break
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
        page.call("Network.enable")
        page.call("Page.enable")
        page.call("Runtime.enable")
        if args.offline:
            page.call("Network.emulateNetworkConditions", offline=True, latency=0,
                      downloadThroughput=-1, uploadThroughput=-1)
        page.call("Emulation.setDeviceMetricsOverride", width=1280, height=800,
                  deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=args.url)
        page.wait_for("Page.loadEventFired")
        samples = []
        deadline = time.time() + args.watch
        while True:
            samples = page.evaluate("window.seen || []")
            if time.time() >= deadline:
                break
            time.sleep(0.5)
        texts = page.evaluate(
            "Object.fromEntries(%s.map(id => [id, (document.getElementById(id) || {}).textContent]))"
            % json.dumps(IDS))
        texts["charts"] = page.evaluate("document.querySelectorAll('.uplot').length")
        # Where each chart's y axis starts (the page keeps its uPlot charts in window.charts).
        texts["y_min"] = page.evaluate(
            "Object.values(window.charts || {}).map(c => c.scales.y.min)")
        if args.screenshot:
            shot = page.call("Page.captureScreenshot", format="png")
            with open(args.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        requests = [e["params"]["request"]["url"] for e in page.events
                    if e.get("method") == "Network.requestWillBeSent"]
        errors = [e["params"]["exceptionDetails"].get("text", "") for e in page.events
                  if e.get("method") == "Runtime.exceptionThrown"]
        print(json.dumps({"samples": samples, "texts": texts, "requests": requests,
                          "errors": errors}))
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Opens a report's index.html (scripts/plot_run.py) in headless Chromium and checks that every
image loads: a copy of the page, beside it so relative links resolve the same, gets a script that
runs in the load event, draws each <img> on a canvas and writes into the DOM its src,
natural size and the share of its pixels that are drawn and not white; Chromium's --dump-dom prints
that DOM and this script reads it back. An image fails when it does not load or decode, is blank, or
leaves pixels transparent (the report's PNGs are opaque; a truncated file leaves rows undrawn).

    check_report_browser.py REPORT_DIR [--chromium PATH] [--timeout S]

Exit status: 0 every image loaded (and there is at least one), 1 an image did not load or the
page did not report, 77 no Chromium (skipped).
"""
import argparse
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

MARK = "BROWSER-CHECK "
PROBE = """
<script>
// Runs in the load event, when every image has loaded or failed; synchronous, so the DOM that
// --dump-dom prints already holds the result.
window.addEventListener("load", function () {
  var out = Array.prototype.slice.call(document.images).map(function (i) {
    var r = {src: i.getAttribute("src"), complete: i.complete, w: i.naturalWidth, h: i.naturalHeight};
    if (!(i.naturalWidth > 0 && i.naturalHeight > 0)) return r;
    // Draw it and read the pixels back: the share that is not white (not blank) and the share
    // left transparent (the report's PNGs are opaque: a truncated file leaves rows undrawn).
    try {
      var c = document.createElement("canvas");
      c.width = i.naturalWidth; c.height = i.naturalHeight;
      var g = c.getContext("2d");
      g.drawImage(i, 0, 0);
      var d = g.getImageData(0, 0, c.width, c.height).data, ink = 0, clear = 0;
      for (var k = 0; k < d.length; k += 4) {
        if (d[k + 3] === 0) clear++;
        else if (d[k] < 230 || d[k + 1] < 230 || d[k + 2] < 230) ink++;
      }
      r.ink = ink / (d.length / 4); r.transparent = clear / (d.length / 4);
    } catch (e) { r.pixels = String(e); }
    return r;
  });
  var pre = document.createElement("pre");
  pre.id = "browser-check";
  pre.textContent = "%s" + JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
""" % MARK


class ImgSrcs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs).get("src"))


def find_chromium(explicit):
    for c in ([explicit] if explicit else []) + ["chromium", "chromium-browser", "google-chrome",
                                                 "google-chrome-stable"]:
        p = shutil.which(c) if c else None
        if p:
            return p
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report_dir")
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", ""))
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    chromium = find_chromium(args.chromium)
    if not chromium:
        print("skip: no chromium (apt-get install chromium)")
        return 77
    index = os.path.join(args.report_dir, "index.html")
    page = open(index, encoding="utf-8").read()
    parser = ImgSrcs()
    parser.feed(page)
    if "</body>" not in page:
        print(f"FAIL {index}: no </body>")
        return 1
    probe_path = os.path.join(args.report_dir, "_browser_check.html")
    with open(probe_path, "w", encoding="utf-8") as f:
        f.write(page.replace("</body>", PROBE + "</body>", 1))
    cmd_tail = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
                "--disable-dev-shm-usage", "--allow-file-access-from-files", "--virtual-time-budget=10000",
                "--dump-dom", "file://" + os.path.abspath(probe_path)]
    m, r = None, None
    try:
        for attempt in range(3):  # a browser that fails to start (a busy machine) gets two more tries
            profile = tempfile.mkdtemp(prefix="report-chromium-")
            try:
                r = subprocess.run([chromium, f"--user-data-dir={profile}"] + cmd_tail, capture_output=True,
                                   text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(f"note: chromium did not finish in {args.timeout:.0f} s (try {attempt + 1})")
                continue
            finally:
                shutil.rmtree(profile, ignore_errors=True)
            m = re.search(re.escape(MARK) + r"(\[.*?\])\s*</pre>", r.stdout, re.S)
            if m:
                break
            print(f"note: the page did not report (chromium exit {r.returncode}, try {attempt + 1})")
    finally:
        os.remove(probe_path)
    if not m:
        err = r.stderr.strip()[-600:] if r else ""
        print(f"FAIL the page did not report in 3 tries; chromium's stderr: {err}")
        return 1
    imgs = json.loads(html.unescape(m.group(1)))
    failures = 0
    if len(imgs) != len(parser.srcs):
        print(f"FAIL the browser saw {len(imgs)} images, index.html has {len(parser.srcs)} <img>")
        failures += 1
    if not imgs:
        print("FAIL index.html has no images")
        failures += 1
    for i in imgs:
        if not (i["complete"] and i["w"] > 0 and i["h"] > 0):
            print(f"FAIL browser could not load {i['src']} (naturalWidth {i['w']})")
            failures += 1
        elif "pixels" in i:
            print(f"ok   browser loaded {i['src']} ({i['w']}x{i['h']}; pixels not readable: {i['pixels']})")
        elif i["ink"] <= 0.005 or i["transparent"] > 0:
            print(f"FAIL browser could not load {i['src']} completely ({i['w']}x{i['h']}: "
                  f"{i['ink'] * 100:.1f}% non-white, {i['transparent'] * 100:.1f}% left transparent)")
            failures += 1
        else:
            print(f"ok   browser loaded {i['src']} ({i['w']}x{i['h']}, {i['ink'] * 100:.1f}% non-white, "
                  "fully drawn)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

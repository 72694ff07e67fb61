"""Regenerate ``docs/report.png``, the README's picture of the report, from a report ``make demo`` wrote.

    python docs/_tools/report_screenshot.py runs/demo/report.html

Opens the report in headless Chromium the way the tests do (``tests/headless_chromium.py``; install
the browser with ``bash .ci/ensure-chromium.sh``), offline, 1050 CSS pixels wide, and stacks three
parts of the page, each cut at an element's edges: the header with the verdict card (one line per
model and site), the accuracy and comparison tables, and the first model's verdict with its
faithfulness table. A grey band marks
each cut. Refuses a report that reached for the network or raised a script error, so a broken
report never becomes the README's picture.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from headless_chromium import CHROMIUM, load_page  # noqa: E402  (the tests' browser driver)
from PIL import Image  # noqa: E402  (matplotlib's dependency)

#: (top, bottom) in page pixels of the parts to keep, measured in the rendered page
PROBE = """JSON.stringify((function(){
  function top(e){ return Math.round(e.getBoundingClientRect().top + window.scrollY); }
  function bottom(e){ return Math.round(e.getBoundingClientRect().bottom + window.scrollY); }
  var panel = document.querySelector('.model-panel.active') || document.querySelector('.model-panel');
  return [[0, bottom(document.getElementById('verdict-card')) + 16],
          [top(document.getElementById('accuracy')) - 16,
           bottom(document.querySelector('#comparison table')) + 16],
          [top(document.getElementById('models')) - 16,
           bottom(panel.querySelector('.faithfulness table')) + 16]];
})())"""
BAND = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="report.html written by make demo")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--width", type=int, default=1050)
    parser.add_argument("--height", type=int, default=12000,
                        help="viewport height: tall enough to hold every part")
    args = parser.parse_args()
    if CHROMIUM is None:
        print("report_screenshot: chromium not installed (bash .ci/ensure-chromium.sh)", file=sys.stderr)
        return 2
    if not args.report.is_file():
        print(f"report_screenshot: {args.report}: no such file (run make demo first)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as profile:
        page = load_page(args.report, Path(profile), probe=PROBE, width=args.width,
                         height=args.height)
    if page.remote_requests or page.console_errors or page.exceptions:
        print(f"report_screenshot: {args.report} did not render cleanly: requests "
              f"{page.remote_requests}, errors {page.console_errors + page.exceptions}", file=sys.stderr)
        return 1
    shot = Image.open(io.BytesIO(page.screenshot)).convert("RGB")
    parts = [shot.crop((0, max(0, a), args.width, min(b, shot.height))) for a, b in page.probe]
    out = Image.new("RGB", (args.width, sum(p.height for p in parts) + BAND * (len(parts) - 1)),
                    (208, 215, 222))
    y = 0
    for part in parts:
        out.paste(part, (0, y))
        y += part.height + BAND
    out.save(args.out, optimize=True)
    print(f"{args.out}: {out.width} x {out.height}, parts {json.dumps(page.probe)} of {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

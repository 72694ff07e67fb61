"""The report as a browser sees it: headless Chromium renders report.html offline.

The browser is driven by :mod:`headless_chromium`, which records every request the page attempts. A
control page that does reference the network proves the check can fail. The report built by the
real pipeline is rendered in tests/test_pipeline.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from headless_chromium import load_page, requires_chromium
from report_fixtures import HOSTILE_ITEM, write_run

from attnaudit.reports.figures import FIGURES
from attnaudit.reports.html import build_report

pytestmark = requires_chromium

# Run in the page after the screenshot: what rendered once the inline script ran, then what the
# model selector, the example filter and the shading buttons do when clicked.
PROBE = """(async function(){
  function visible(el){ return el.offsetParent !== null; }
  function pause(){ return new Promise(function(r){ setTimeout(r, 50); }); }
  var panels = [].slice.call(document.querySelectorAll('.model-panel'));
  var out = {
    url: document.URL, ready: document.readyState,
    js: document.documentElement.classList.contains('js'),
    tables: document.querySelectorAll('main table').length,
    accuracyRows: document.querySelectorAll('#accuracy tbody tr').length,
    images: [].map.call(document.images, function(i){
      return {ok: i.complete && i.naturalWidth > 0, data: i.src.startsWith('data:')}; }),
    panels: panels.length,
    visiblePanels: panels.filter(visible).map(function(p){ return p.id; }),
    examples: document.querySelectorAll('article.example').length,
    items: document.querySelectorAll('article.example .doc .it').length,
    scripts: document.scripts.length,
    hostileText: [].some.call(document.querySelectorAll('.doc .it'),
      function(s){ return s.textContent === %s; }),
    stickyHeader: getComputedStyle(document.querySelector('thead')).position
  };
  var details = document.querySelector('.model-panel.active .example details');
  details.open = true; await pause();
  out.tableRows = details.querySelectorAll('tbody tr').length;
  out.tableItems = details.closest('.example').querySelectorAll('.doc .it').length;
  out.removedCells = details.querySelectorAll('tbody .gone').length;
  var tabs = document.querySelectorAll('.tabs a.tab');
  tabs[tabs.length - 1].click(); await pause();
  out.afterTab = panels.filter(visible).map(function(p){ return p.id; });
  out.tabTarget = tabs[tabs.length - 1].dataset.model;
  var box = document.querySelector('.model-panel.active .examples');
  box.querySelector('[data-filter="never_flips"]').click(); await pause();
  var shown = [].filter.call(box.querySelectorAll('.example'), visible);
  out.filtered = shown.map(function(e){ return e.dataset.category; });
  shown[0].querySelector('button[data-view="1"]').click();  // the first ranking score view
  shown[0].querySelector('button[data-removed="1"]').click();  // the second ranking: attention
  var doc = shown[0].querySelector('.doc');
  out.view = doc.dataset.view + '/' + doc.dataset.removed;
  out.shaded = getComputedStyle(doc.querySelector('.it')).backgroundColor;
  return JSON.stringify(out);
})()"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run = write_run(tmp_path_factory.mktemp("browser") / "run", ("flan-rnn", "han-cnn"),
                    n_docs=60)
    yield build_report(run)


def test_report_renders_offline(report: Path, tmp_path: Path) -> None:
    page = load_page(report, tmp_path / "profile", probe=PROBE % json.dumps(HOSTILE_ITEM))
    shot = report.parent / "report-screenshot.png"
    shot.write_bytes(page.screenshot)
    print(f"screenshot: {shot}")  # shown with pytest -rP; worth a look after changing the report

    assert page.remote_requests == [], "the report must not touch the network"
    assert page.console_errors == [] and page.exceptions == []
    assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 50_000
    p = page.probe
    assert p["url"] == report.resolve().as_uri() and p["ready"] == "complete"
    assert p["js"], "the inline script did not run"
    assert p["accuracyRows"] == 2
    assert p["tables"] >= 2 + 3 * 3  # accuracy, comparison; per site three tables and more
    # every per-site figure at each site (flan-rnn: token; han-cnn: sentence, word), and the
    # figures across models
    per_site = sum(s.per_site for s in FIGURES)
    assert len(p["images"]) == per_site * 3 + sum(s.across_models for s in FIGURES)
    assert all(i["ok"] and i["data"] for i in p["images"]), p["images"]
    assert p["panels"] == 2 and p["visiblePanels"] == ["m-flan-rnn"]  # one model at a time
    assert p["examples"] >= 8 and p["items"] > 50
    assert p["hostileText"], "document text is shown as text"
    assert p["scripts"] == 1, "document text must not become a script"
    assert p["stickyHeader"] == "sticky"
    # The DOM as rendered (what --dump-dom prints): the script marked the first panel active.
    assert 'class="model-panel active" id="m-flan-rnn"' in page.dom
    # Clicking works: per-item table, model selector, example filter, shading, removal outline.
    assert p["tableRows"] == p["tableItems"] > 1 and p["removedCells"] > 0
    assert p["afterTab"] == [p["tabTarget"]] == ["m-han-cnn"]
    assert p["filtered"] and set(p["filtered"]) == {"never_flips"}
    assert p["view"] == "1/1"
    assert p["shaded"] != "rgba(0, 0, 0, 0)"


def test_network_check_catches_a_remote_reference(tmp_path: Path) -> None:
    """Control: the same probe does see a page that reaches for the network."""
    page = tmp_path / "control.html"
    page.write_text('<html><body><p>x</p><img src="http://127.0.0.1:9/a.png">'
                    '<link rel="stylesheet" href="https://example.invalid/a.css"></body></html>',
                    encoding="utf-8")
    load = load_page(page, tmp_path / "profile", probe="'{}'", width=400, height=300)
    assert "http://127.0.0.1:9/a.png" in load.remote_requests
    assert "https://example.invalid/a.css" in load.remote_requests


# Run in the page at a given window width: for each model panel in turn, what sticks out of the
# window (outside a horizontal scroll box), how wide the page is, and where the verdict card sits.
LAYOUT = """(async function(){
  function pause(){ return new Promise(function(r){ setTimeout(r, 50); }); }
  var out = {width: window.innerWidth, panels: [], card: null, stickyFirst: null};
  var first = document.querySelector('main > section');
  out.card = first ? first.id : null;
  var tabs = [].slice.call(document.querySelectorAll('.tabs a.tab'));
  for (var i = 0; i < tabs.length; i++) {
    tabs[i].click(); await pause();
    var wide = [];
    document.querySelectorAll('main *').forEach(function(el){
      if (!el.offsetParent || el.closest('.scroll-x, .scroll')) return;
      var r = el.getBoundingClientRect();
      if (r.right > window.innerWidth + 1) wide.push(el.tagName + '.' + el.className);
    });
    out.panels.push({model: tabs[i].dataset.model, wide: wide.slice(0, 5), n: wide.length,
                     page: document.documentElement.scrollWidth});
    var cell = document.querySelector('.model-panel.active .scroll-x td:first-child');
    if (cell) out.stickyFirst = getComputedStyle(cell).position;
  }
  return JSON.stringify(out);
})()"""


@pytest.mark.parametrize("width", [1400, 800])
def test_nothing_is_wider_than_the_page(report: Path, tmp_path: Path, width: int) -> None:
    """At 1400 and 800 px nothing sticks out of the window: wide tables scroll in their own box
    (first column sticky) and the verdict card is the first thing in the page."""
    page = load_page(report, tmp_path / "profile", probe=LAYOUT, width=width, height=1200)
    p = page.probe
    assert p["width"] == width and p["card"] == "verdict-card"
    assert [x["model"] for x in p["panels"]] == ["m-flan-rnn", "m-han-cnn"]
    for panel in p["panels"]:
        assert panel["n"] == 0 and panel["page"] <= width, panel
    if width == 800:  # the Test 2 table no longer fits: it scrolls, its ranking column stays
        assert p["stickyFirst"] == "sticky"

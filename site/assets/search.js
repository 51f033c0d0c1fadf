// Offline search: Pagefind's default UI in #search, started with the query from ?q=
// (the header's search form submits here with a plain GET, so it works without this file too).
//
// Two indexes: the pages (English), and the entries' Chinese (summaries, glibc's messages) in
// pagefind-zh/, indexed as Chinese. Pagefind splits an index by page language and reads a query
// with the rules of the index it starts from, so a query with Chinese in it is searched in the
// Chinese index, any other in the English one: typing Chinese switches to the Chinese UI.
(function () {
  var HAN = /[\u3400-\u9fff\uf900-\ufaff]/;
  var RANKING = {
    // entry pages are long; without this, a short page that mentions a name once outranks the
    // entry about that name ("reuseaddr" should find SO_REUSEADDR first)
    en: { pageLength: 0.3, termSimilarity: 3 },
    // the Chinese records are a few lines each and weighted by how many notes link to the entry
    // (tcpkb/site/generate.py): let the weight decide, not the record's length or repetitions
    zh: { pageLength: 0, termSaturation: 0.5, termFrequency: 0.5 }
  };

  function start() {
    var box = document.getElementById("search");
    if (!box || typeof PagefindUI === "undefined") return;  // the bundle is missing: keep the plain form
    // Opened from disk, the browser refuses to fetch the index: keep the page's own text, which says so.
    if (window.location.protocol === "file:") return;
    var script = document.querySelector("script[src*='pagefind-ui.js']");
    var bundles = { en: new URL("./", script.src).pathname, zh: new URL("../pagefind-zh/", script.src).pathname };
    var uis = {}, shown = null;
    box.textContent = "";

    // one UI per index, made when first needed; the other is hidden, never torn down mid-search
    function open(lang, query) {
      if (!uis[lang]) {
        var frame = document.createElement("div");
        frame.id = "search-" + lang;
        box.appendChild(frame);
        uis[lang] = { frame: frame, ui: new PagefindUI({
          element: "#" + frame.id, bundlePath: bundles[lang], ranking: RANKING[lang],
          showSubResults: true, showImages: false, autofocus: !shown
        }) };
        var input = frame.querySelector("input");
        // the UI names its box only by a tooltip: give it a name a screen reader announces
        if (input) {
          input.setAttribute("aria-label", "Search tcpkb, in English or Chinese");
          if (lang === "zh") input.setAttribute("lang", "zh-CN");
        }
      }
      for (var other in uis) uis[other].frame.hidden = other !== lang;
      shown = lang;
      if (query) uis[lang].ui.triggerSearch(query);
      var box_input = uis[lang].frame.querySelector("input");
      if (box_input && query && document.activeElement && document.activeElement.tagName === "INPUT") {
        box_input.focus();
        box_input.setSelectionRange(query.length, query.length);
      }
    }

    box.addEventListener("input", function (event) {
      var query = event.target.value || "";
      var wanted = HAN.test(query) ? "zh" : "en";
      if (wanted !== shown) open(wanted, query);
    });
    var q = new URLSearchParams(window.location.search).get("q") || "";
    open(HAN.test(q) ? "zh" : "en", q);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

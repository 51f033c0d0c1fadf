// Offline search: Pagefind's default UI in #search, started with the query from ?q=
// (the header's search form submits here with a plain GET, so it works without this file too).
(function () {
  function start() {
    var box = document.getElementById("search");
    if (!box || typeof PagefindUI === "undefined") return;  // the bundle is missing: keep the plain form
    // Opened from disk, the browser refuses to fetch the index: keep the page's own text, which says so.
    if (window.location.protocol === "file:") return;
    box.textContent = "";
    var ui = new PagefindUI({
      element: "#search", showSubResults: true, showImages: false, autofocus: true,
      // entry pages are long; without this, a short page that mentions a name once outranks the
      // entry about that name ("reuseaddr" should find SO_REUSEADDR first)
      ranking: { pageLength: 0.3, termSimilarity: 3 }
    });
    var q = new URLSearchParams(window.location.search).get("q");
    if (q) ui.triggerSearch(q);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

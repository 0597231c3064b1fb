// kubectl swf ui: live updates. The server says "changed" (server-sent events) when its cache
// changes; the page fetches itself again and swaps its <main>, unless it is a form page or
// the user is typing in it. Without JavaScript the pages work; they just do not update.
(function () {
  "use strict";
  var status = document.getElementById("live");
  if (document.body.dataset.live !== "true" || !window.EventSource) {
    return;
  }
  var busy = false;
  function refresh() {
    var active = document.activeElement;
    if (busy || (active && active.closest && active.closest("form"))) {
      return;
    }
    busy = true;
    fetch(location.href, { headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) { return; }
        var next = new DOMParser().parseFromString(text, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (next && main) { main.replaceWith(next); }
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  // From the version the page was rendered at: a change in between is not lost.
  var main = document.getElementById("main");
  var since = main && main.dataset.version ? "?since=" + encodeURIComponent(main.dataset.version) : "";
  var source = new EventSource("/events" + since);
  source.onopen = function () { status.textContent = "live updates: on"; };
  source.onerror = function () { status.textContent = "live updates: reconnecting"; };
  source.onmessage = refresh;
})();

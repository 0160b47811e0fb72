// callhook console: live updates. Listens to /events (server-sent events) and, on each,
// re-reads this page and swaps its live section (#live) in. No build step, no dependency.
(function () {
  "use strict";
  if (!window.EventSource || !document.getElementById("live")) return;
  var pending = null;
  function refresh() {
    pending = null;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) document.getElementById("live").innerHTML = fresh.innerHTML;
      })
      .catch(function () {});
  }
  function soon() {
    if (!pending) pending = setTimeout(refresh, 150);
  }
  var source = new EventSource("/events");
  // What changed between rendering this page and opening the stream is read once it opens.
  source.addEventListener("open", soon);
  // A page left (or kept in the back-forward cache) gives its connection back: a browser opens
  // only a few at once to one host, and a stream holds one.
  window.addEventListener("pagehide", function () { source.close(); });
  ["connection", "calls", "deliveries"].forEach(function (name) {
    source.addEventListener(name, soon);
  });
})();

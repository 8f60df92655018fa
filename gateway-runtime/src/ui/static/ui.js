// certgate certificate page: copy buttons and live updates (server-sent events). Served from
// the page's own path; the Content-Security-Policy allows no other script.
(function () {
  "use strict";
  var base = document.documentElement.getAttribute("data-base") || "/ui/";

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) return;
    var text = button.getAttribute("data-copy");
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {});
    }
  });

  if (!document.querySelector("[data-live]") || !window.EventSource) return;
  var timer = null;
  var refresh = function () {
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (!text) return;
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("[data-live]");
        var current = document.querySelector("[data-live]");
        if (fresh && current) {
          current.replaceWith(document.importNode(fresh, true));
          document.documentElement.setAttribute("data-updated", String(Date.now()));
        }
      })
      .catch(function () {});
  };
  var events = new EventSource(base + "events");
  events.addEventListener("change", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });
})();

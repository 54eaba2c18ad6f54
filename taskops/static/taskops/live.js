/* TaskOps live refresh: re-fetch this page and swap its [data-live] regions. No framework.
   Interval Off/2/5/15 s is remembered per browser; stops (and says so) on an error. */
(function () {
  "use strict";
  var KEY = "taskops.refresh";
  var FLOOR = 2;
  var timer = null;
  var busy = false;

  function stored() {
    var value = window.localStorage.getItem(KEY);
    var n = value === null ? 5 : parseInt(value, 10);
    return isNaN(n) ? 5 : n;
  }
  function controls() { return document.querySelectorAll("[data-live-control]"); }
  function setStatus(text) {
    document.querySelectorAll("[data-live-status]").forEach(function (el) { el.textContent = text; });
  }
  function schedule(seconds) {
    window.clearTimeout(timer);
    if (seconds > 0) timer = window.setTimeout(tick, Math.max(seconds, FLOOR) * 1000);
  }
  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-live]").forEach(function (region) {
      // Never pull a form out from under someone using it.
      var focused = document.activeElement;
      if (focused && focused !== document.body && region.contains(focused) && focused.form) return;
      var next = fresh.getElementById(region.id);
      if (next) region.replaceWith(document.importNode(next, true));
    });
  }
  function tick() {
    var seconds = stored();
    if (seconds <= 0) return;
    if (document.hidden || busy) { schedule(seconds); return; }
    busy = true;
    fetch(window.location.href, {
      credentials: "same-origin", cache: "no-store", headers: { "X-TaskOps-Live": "1" }
    }).then(function (response) {
      if (response.redirected && response.url.indexOf("/login/") !== -1) throw new Error("your session ended");
      if (!response.ok) throw new Error("the server answered " + response.status);
      return response.text();
    }).then(function (html) {
      swap(html);
      syncControls(stored());
      setStatus("");
      schedule(stored());
    }).catch(function (error) {
      setStatus("Live refresh stopped: " + error.message + ". Pick an interval to try again.");
      controls().forEach(function (select) { select.value = "0"; });
    }).finally(function () { busy = false; });
  }
  // Forms that need a second look carry data-confirm="question".
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  function syncControls(seconds) {
    controls().forEach(function (select) { select.value = String(seconds); });
  }
  // Delegated, so controls swapped in with a fresh region keep working.
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select.matches || !select.matches("[data-live-control]")) return;
    window.localStorage.setItem(KEY, select.value);
    syncControls(select.value);
    setStatus("");
    schedule(parseInt(select.value, 10));
  });

  function init() {
    var seconds = stored();
    syncControls(seconds);
    if (document.querySelector("[data-live]")) schedule(seconds);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

/* Schedule editor: show the fields of the chosen kind of schedule, and preview its next runs as
   the user types (a GET of the server-rendered fragment; nothing is saved). No framework. */
(function () {
  "use strict";
  var DELAY = 250;

  function init() {
    var form = document.getElementById("taskops-schedule-form");
    var region = document.getElementById("taskops-schedule-preview");
    if (!form || !region) return;
    var fields = (form.getAttribute("data-preview-fields") || "").split(" ");
    var timer = null;
    var latest = 0;

    function kind() {
      var checked = form.querySelector("input[name=kind]:checked");
      return checked ? checked.value : "";
    }
    function showKind() {
      var chosen = kind();
      form.querySelectorAll("[data-kind-group]").forEach(function (group) {
        group.hidden = group.getAttribute("data-kind-group") !== chosen;
      });
    }
    function query() {
      var params = new URLSearchParams();
      new FormData(form).forEach(function (value, name) {
        if (fields.indexOf(name) !== -1) params.append(name, value);
      });
      return params.toString();
    }
    function refresh() {
      var mine = ++latest;
      region.setAttribute("aria-busy", "true");
      fetch(form.getAttribute("data-preview-url") + "?" + query(), {
        credentials: "same-origin", cache: "no-store"
      }).then(function (response) {
        if (response.redirected && response.url.indexOf("/login/") !== -1) throw new Error("your session ended");
        if (!response.ok) throw new Error("the server answered " + response.status);
        return response.text();
      }).then(function (html) {
        if (mine !== latest) return;  // an older answer arriving late
        var fresh = new DOMParser().parseFromString(html, "text/html").body;
        region.replaceChildren.apply(region, Array.prototype.slice.call(fresh.childNodes));
      }).catch(function (error) {
        if (mine === latest) region.textContent = "The preview is not available: " + error.message + ".";
      }).finally(function () {
        if (mine === latest) region.removeAttribute("aria-busy");
      });
    }
    function changed(event) {
      var name = event.target && event.target.name;
      if (fields.indexOf(name) === -1) return;
      if (name === "kind") showKind();
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DELAY);
    }
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    showKind();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

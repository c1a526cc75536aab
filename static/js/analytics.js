/* Analytics: keeps the filter bar tidy (the charts are chart-cards.js's). */
(function () {
  "use strict";

  function results() {
    return document.getElementById("analytics-results");
  }

  document.addEventListener("click", function (event) {
    var picker = document.querySelector(".store-picker[open]");
    if (picker && !picker.contains(event.target)) picker.open = false; // a click elsewhere closes it
    if (event.target.closest("[data-clear-stores]")) {
      var form = document.getElementById("analytics-filters");
      form.querySelectorAll("input[name=store]").forEach(function (box) { box.checked = false; });
      storeSummary();
      form.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });

  function storeSummary() {
    var picker = document.querySelector(".store-picker");
    if (!picker) return;
    var boxes = picker.querySelectorAll("input[name=store]");
    var chosen = Array.prototype.filter.call(boxes, function (box) { return box.checked; });
    var summary = picker.querySelector("summary");
    if (chosen.length === 0) summary.textContent = summary.dataset.all;
    else if (chosen.length === 1) summary.textContent = chosen[0].parentElement.textContent.trim();
    else summary.textContent = chosen.length + " of " + boxes.length + " stores";
  }

  // Custom dates start from the period on screen; the preset ranges send no dates.
  function rangeChanged(select) {
    var custom = select.value === "custom";
    var shown = results();
    document.querySelectorAll(".custom-dates").forEach(function (field) {
      field.hidden = !custom;
      var input = field.querySelector("input");
      input.disabled = !custom;
      if (custom && !input.value && shown) {
        input.value = input.name === "start" ? shown.dataset.start : shown.dataset.end;
      }
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "id_range") rangeChanged(event.target); // before htmx reads the form
    if (event.target.name === "store") storeSummary();
  }, true);

  // Empty filters stay out of the URL.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt.id !== "analytics-filters") return;
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (name) {
      if (params[name] === "") delete params[name];
    });
  });

  // Back and forward restore the page as it was saved, with the filter controls as first
  // drawn: set them from the URL, which is the view.
  function syncFilters() {
    var form = document.getElementById("analytics-filters");
    if (!form) return;
    var query = new URLSearchParams(window.location.search);
    var range = form.querySelector("#id_range");
    range.value = query.get("range") || "30d";
    ["start", "end"].forEach(function (name) { form.elements[name].value = query.get(name) || ""; });
    rangeChanged(range);
    var stores = query.getAll("store");
    form.querySelectorAll("input[name=store]").forEach(function (box) {
      box.checked = stores.indexOf(box.value) !== -1;
    });
    ["fulfillment", "customers"].forEach(function (name) { form.elements[name].value = query.get(name) || ""; });
    storeSummary();
  }

  // Charts are drawn by chart-cards.js (the results are a [data-chart-root]).
  document.addEventListener("htmx:historyRestore", syncFilters);
  document.addEventListener("DOMContentLoaded", storeSummary);
})();

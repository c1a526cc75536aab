/* A campaign's results: draws the Plotly charts the server describes (as the Analytics page
   does) and switches a chart to its table and back. The numbers all come from the server. */
(function () {
  "use strict";

  var views = {}; // chart key -> "chart" or "table", kept while the window changes
  var config = { displayModeBar: false, responsive: true };

  function report() {
    return document.getElementById("campaign-report");
  }

  function show(card, view) {
    card.querySelector(".chart-view").hidden = view !== "chart";
    card.querySelector(".table-view").hidden = view !== "table";
    card.querySelectorAll("[data-view]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.view === view));
    });
    var plot = card.querySelector(".js-plotly-plot");
    if (view === "chart" && plot && window.Plotly) window.Plotly.Plots.resize(plot); // drawn while hidden
  }

  function draw(root) {
    if (!root) return;
    if (window.Plotly) {
      root.querySelectorAll("[data-figure]").forEach(function (el) {
        var source = document.getElementById(el.dataset.figure);
        if (!source) return;
        var figure = JSON.parse(source.textContent);
        window.Plotly.newPlot(el, figure.data, figure.layout, config);
      });
    }
    root.querySelectorAll(".chart-card").forEach(function (card) {
      show(card, views[card.dataset.chart] || "chart");
    });
  }

  function purge(root) {
    if (!root || !window.Plotly) return;
    root.querySelectorAll(".js-plotly-plot").forEach(function (el) { window.Plotly.purge(el); });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("#campaign-report .chart-card [data-view]");
    if (!button) return;
    var card = button.closest(".chart-card");
    views[card.dataset.chart] = button.dataset.view;
    show(card, button.dataset.view);
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "campaign-report") purge(event.detail.target);
  });
  document.addEventListener("htmx:afterSettle", function () { draw(report()); });
  document.addEventListener("DOMContentLoaded", function () { draw(report()); });
})();

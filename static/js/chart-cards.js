/* Chart cards (analytics/_chart.html), wherever a page has them: draws the Plotly figures
   the server describes inside each [data-chart-root] and switches a card between its chart
   and its table. The numbers all come from the server. Used by Analytics and a campaign's
   report; window.chartCards.draw(root) redraws after a page changes a root itself. */
(function () {
  "use strict";

  var views = {}; // chart key -> "chart" or "table", kept while the root is replaced
  var config = { displayModeBar: false, responsive: true };

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

  function drawAll() {
    document.querySelectorAll("[data-chart-root]").forEach(draw);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-chart-root] .chart-card [data-view]");
    if (!button) return;
    var card = button.closest(".chart-card");
    views[card.dataset.chart] = button.dataset.view;
    show(card, button.dataset.view);
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.matches("[data-chart-root]")) purge(target);
  });
  document.addEventListener("htmx:afterSettle", drawAll);
  document.addEventListener("htmx:historyRestore", drawAll);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();

  window.chartCards = { draw: draw, purge: purge, show: show };
})();

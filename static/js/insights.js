/* The insights chat: draw each answer's chart from its json_script block (on load and when
   htmx adds an answer), show the refusals (400, 429) htmx would otherwise drop, clear the
   question box after an answer, and let a suggested question be asked with one click.
   Loaded with `defer` after Chart.js; loaded twice (page and panel) it runs once. */
(function () {
  "use strict";
  if (window.interludeInsights) return;
  window.interludeInsights = true;

  function draw(root) {
    if (typeof window.Chart === "undefined") return;
    root.querySelectorAll("canvas[data-insights-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      var source = document.getElementById(canvas.dataset.insightsChart);
      if (!source) return;
      var data = JSON.parse(source.textContent);
      var datasets = data.datasets
        ? data.datasets.map(function (set) { return { label: set.label, data: set.values }; })
        : [{ label: data.label, data: data.values }];
      canvas.dataset.drawn = "1";
      new window.Chart(canvas, {
        type: data.type,
        data: { labels: data.labels, datasets: datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          plugins: { legend: { display: datasets.length > 1, position: "bottom" } },
          scales: { y: { beginAtZero: true } },
        },
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    draw(event.detail.target);
    var form = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (form && form.matches && form.matches("form.insights-form") && event.detail.xhr.status === 200) {
      form.querySelector("input[name=question]").value = "";
    }
  });
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 400 || status === 429) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.body.addEventListener("click", function (event) {
    var button = event.target.closest("[data-suggestion]");
    if (!button) return;
    var form = document.querySelector("form.insights-form");
    form.querySelector("input[name=question]").value = button.dataset.suggestion;
    form.requestSubmit();
  });
})();

/* Staff pages: draw each chart from its json_script block (the numbers are also in the tables
   beside the charts). Loaded with `defer` after Chart.js. The executive dashboard's figures are
   refreshed by htmx (hx-trigger="every 5s"), not from here. */
(function () {
  "use strict";

  if (typeof window.Chart === "undefined") return;

  // No animation for those who asked their system for less motion.
  function motion(options) {
    if (window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches) {
      options.animation = false;
    }
    return options;
  }

  function fixed(places) {
    return function (value) {
      return value === null || value === undefined ? "—" : Number(value).toFixed(places);
    };
  }

  // AUC (left axis) and log loss (right axis) of each version, oldest first.
  function versionsChart(canvas, data) {
    var four = fixed(4);
    return new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          {
            label: "AUC",
            data: data.auc,
            yAxisID: "auc",
            borderColor: "#0172ad",
            backgroundColor: "#0172ad",
            spanGaps: true,
          },
          {
            label: "Log loss",
            data: data.log_loss,
            yAxisID: "logLoss",
            borderColor: "#c0392b",
            backgroundColor: "#c0392b",
            borderDash: [6, 4],
            spanGaps: true,
          },
        ],
      },
      options: motion({
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          auc: { position: "left", title: { display: true, text: "AUC (higher is better)" } },
          logLoss: {
            position: "right",
            grid: { drawOnChartArea: false },
            title: { display: true, text: "Log loss (lower is better)" },
          },
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (item) {
                return item.dataset.label + ": " + four(item.raw);
              },
            },
          },
        },
      }),
    });
  }

  // Observed rate against mean prediction per bin, and the diagonal of perfect calibration.
  function reliabilityChart(canvas, data) {
    var four = fixed(4);
    return new window.Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [
          {
            label: "Observed rate (a tenth, or a bin)",
            data: data.points,
            showLine: true,
            borderColor: "#0172ad",
            backgroundColor: "#0172ad",
          },
          {
            label: "Perfect calibration",
            data: [
              { x: 0, y: 0 },
              { x: data.limit, y: data.limit },
            ],
            showLine: true,
            pointRadius: 0,
            borderColor: "#888",
            borderDash: [4, 4],
          },
        ],
      },
      options: motion({
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { min: 0, max: data.limit, title: { display: true, text: "Mean predicted" } },
          y: { min: 0, max: data.limit, title: { display: true, text: "Observed rate" } },
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            filter: function (item) {
              return item.datasetIndex === 0;
            },
            callbacks: {
              label: function (item) {
                return (
                  "predicted " + four(item.raw.x) + ", observed " + four(item.raw.y) +
                  " (" + data.counts[item.dataIndex] + " rows)"
                );
              },
            },
          },
        },
      }),
    });
  }

  // The retention curve (share still watching by minute) with the ad breaks as points, and
  // the recommended new places as hollow points.
  function retentionChart(canvas, data) {
    var percent = function (value) { return (100 * value).toFixed(1) + " %"; };
    return new window.Chart(canvas, {
      type: "line",
      data: {
        datasets: [
          {
            label: "Still watching",
            data: data.minutes.map(function (minute, i) { return { x: minute, y: data.curve[i] }; }),
            pointRadius: 0,
            borderWidth: 2,
            borderColor: "#0172ad",
            backgroundColor: "#0172ad",
          },
          {
            label: "Ad breaks",
            type: "scatter",
            data: data.breaks.map(function (b) {
              return { x: b.minute, y: b.share, abandonment: b.abandonment, baseline: b.baseline };
            }),
            pointRadius: 6,
            pointStyle: "rectRot",
            borderColor: "#c0392b",
            backgroundColor: "#c0392b",
          },
          {
            label: "Recommended places",
            type: "scatter",
            data: data.moves.map(function (m) { return { x: m.minute, y: m.share }; }),
            pointRadius: 6,
            pointStyle: "circle",
            borderColor: "#1e7b34",
            borderWidth: 2,
            backgroundColor: "transparent",
          },
        ],
      },
      options: motion({
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { type: "linear", title: { display: true, text: "minute of the title" } },
          y: { min: 0, max: 1, ticks: { callback: percent } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (item) {
                var point = item.raw;
                var text = item.dataset.label + " at minute " + Number(point.x).toFixed(1) +
                  ": " + percent(point.y) + " still watching";
                if (point.abandonment !== undefined) {
                  text += "; leave here " + percent(point.abandonment) +
                    " (baseline " + percent(point.baseline) + ")";
                }
                return text;
              },
            },
          },
        },
      }),
    });
  }

  var charts = {
    versions: versionsChart,
    reliability: reliabilityChart,
    retention: retentionChart,
  };

  document.querySelectorAll("canvas[data-staff-chart]").forEach(function (canvas) {
    var draw = charts[canvas.dataset.staffChart];
    var source = document.getElementById(canvas.dataset.source);
    if (draw && source) draw(canvas, JSON.parse(source.textContent));
  });
})();

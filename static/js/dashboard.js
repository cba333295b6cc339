/* Dashboards: draw each chart from its json_script block and, on the overview, keep the
   "Today (live)" tiles and today's point of the chart current from the account's WebSocket
   (/ws/a/<slug>/live/, a JSON message {"type": "today", ...} on connect and on each change).
   Loaded with `defer` after Chart.js. */
(function () {
  "use strict";

  var DASH = "—"; // an undefined ratio, as the server writes it
  var NOT_A_MEMBER = 4404; // the socket's refusal: retrying cannot help
  var MAX_DELAY_MS = 30000;
  var liveCharts = [];

  // The same formats as config/formats.py: grouped, money with its currency's affixes
  // (["$", ""], or ["", " CHF"]) that the page gives.
  function integer(value) {
    return Number(value).toLocaleString("en-US");
  }
  function money(value, affixes) {
    var number = Number(value);
    var text = Math.abs(number).toLocaleString("en-US", {
      minimumFractionDigits: 2,
      maximumFractionDigits: 2,
    });
    return (number < 0 ? "-" : "") + affixes[0] + text + affixes[1];
  }
  function percent(value) {
    return value === null || value === undefined ? DASH : (value * 100).toFixed(2) + "%";
  }

  function drawChart(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof window.Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        impressions: {
          position: "left",
          beginAtZero: true,
          ticks: { precision: 0 },
          title: { display: true, text: "Impressions" },
        },
        clicks: {
          position: "right",
          beginAtZero: true,
          ticks: { precision: 0 },
          grid: { drawOnChartArea: false },
          title: { display: true, text: "Clicks" },
        },
        spend: {
          position: "right",
          beginAtZero: true,
          grid: { drawOnChartArea: false },
          title: { display: true, text: "Spend (" + data.currency + ")" },
        },
      },
      plugins: {
        legend: { position: "bottom" },
        tooltip: {
          callbacks: {
            label: function (item) {
              var isMoney = item.dataset.yAxisID === "spend";
              var text = isMoney ? money(item.raw, data.money_affixes) : integer(item.raw);
              return item.dataset.label + ": " + text;
            },
          },
        },
      },
    };
    if (window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches) {
      options.animation = false;
    }
    var chart = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          {
            type: "bar",
            label: "Impressions",
            data: data.impressions,
            yAxisID: "impressions",
            backgroundColor: "rgba(1, 114, 173, 0.35)",
            borderColor: "#0172ad",
            borderWidth: 1,
            order: 3,
          },
          {
            type: "line",
            label: "Clicks",
            data: data.clicks,
            yAxisID: "clicks",
            borderColor: "#c0392b",
            backgroundColor: "#c0392b",
            order: 1,
          },
          {
            type: "line",
            label: "Spend (" + data.currency + ")",
            data: data.spend,
            yAxisID: "spend",
            borderColor: "#1e7b34",
            backgroundColor: "#1e7b34",
            borderDash: [6, 4],
            order: 2,
          },
        ],
      },
      options: options,
    });
    if (canvas.hasAttribute("data-live-chart")) liveCharts.push(chart);
  }

  function showToday(section, today) {
    var values = {
      day: today.day,
      impressions: integer(today.impressions),
      clicks: integer(today.clicks),
      completes: integer(today.completes),
      spend: money(today.spend, [section.dataset.moneyPrefix, section.dataset.moneySuffix]),
      ctr: percent(today.ctr),
      completion_rate: percent(today.completion_rate),
    };
    section.querySelectorAll("[data-live]").forEach(function (element) {
      var key = element.dataset.live;
      if (Object.prototype.hasOwnProperty.call(values, key)) element.textContent = values[key];
    });
    // Today's point, when today is one of the chart's days.
    liveCharts.forEach(function (chart) {
      var index = chart.data.labels.indexOf(today.day);
      if (index < 0) return;
      var datasets = chart.data.datasets;
      datasets[0].data[index] = today.impressions;
      datasets[1].data[index] = today.clicks;
      datasets[2].data[index] = Number(today.spend);
      chart.update("none");
    });
  }

  function followLive(section) {
    var status = section.querySelector("[data-live-status]");
    var failures = 0;

    function setState(state, text) {
      section.dataset.state = state;
      if (status) status.textContent = text;
    }

    function connect() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + window.location.host + section.dataset.liveUrl);
      socket.onopen = function () {
        failures = 0;
        setState("live", "live");
      };
      socket.onmessage = function (event) {
        var message;
        try {
          message = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        if (message.type === "today") showToday(section, message);
      };
      socket.onclose = function (event) {
        if (event.code === NOT_A_MEMBER) {
          setState("offline", "live updates unavailable");
          return;
        }
        // Exponential backoff with jitter, so a restarted server is not hit by every tab at once.
        var delay = Math.min(MAX_DELAY_MS, 1000 * Math.pow(2, failures));
        failures += 1;
        setState("offline", "reconnecting…");
        window.setTimeout(connect, delay * (0.5 + Math.random() / 2));
      };
    }

    setState("connecting", "connecting…");
    connect();
  }

  document.querySelectorAll("canvas[data-chart]").forEach(drawChart);
  document.querySelectorAll("[data-live-url]").forEach(followLive);
})();

/* Staff pages that follow viewing live over the staff socket (/ws/staff/sessions/, staff only):
   messages {"type": "sessions", "sessions": [rows]} as sessions change, and {"type": "viewing",
   active_sessions, average_live_score, average_engagement} on connect and after changes.
   - The live sessions page updates its rows, adds new sessions at the top and lets ended ones
     go after a few seconds; a session's page updates its own row.
   - Between messages, a playing session's position runs on at 1× (a display, as the player's
     own clock would; the next message sets it again).
   - Any page with [data-figure] spans for the viewing figures (the executive dashboard) writes
     them, formatted as the server does (config/formats.py, analytics/reports.py).
   No polling: nothing here asks the server for anything but the socket. */
(function () {
  "use strict";

  var NOT_STAFF = 4404; // the socket's refusal: retrying cannot help
  var MAX_DELAY_MS = 30000;
  var ENDED_STAY_MS = 8000;
  var MAX_ROWS = 200;
  var SPARK_WIDTH = 120;
  var SPARK_HEIGHT = 24;
  var DASH = "—";

  var root = document.querySelector("[data-staff-socket]");
  if (!root) return;
  var status = document.querySelector("[data-live-status]");
  var table = document.querySelector("table.sessions");
  var single = table && table.dataset.singleSession ? Number(table.dataset.singleSession) : null;
  var listing = table && single === null;

  function count(value) {
    return value === null || value === undefined ? DASH : Number(value).toLocaleString("en-US");
  }
  function percent(value) {
    return value === null || value === undefined ? DASH : (value * 100).toFixed(2) + "%";
  }
  function clock(seconds) {
    if (seconds === null || seconds === undefined) return DASH;
    seconds = Math.floor(seconds);
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = seconds % 60;
    var mm = hours ? String(minutes).padStart(2, "0") : String(minutes);
    return (hours ? hours + ":" : "") + mm + ":" + String(rest).padStart(2, "0");
  }
  // The same arithmetic as analytics/staff_views.py's sparkline_points.
  function sparkline(history) {
    var step = SPARK_WIDTH / Math.max(1, history.length - 1);
    return history
      .map(function (score, index) {
        return (index * step).toFixed(1) + "," + ((1 - score) * SPARK_HEIGHT).toFixed(1);
      })
      .join(" ");
  }
  function slug(text) {
    return String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-");
  }

  function cell(text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function newRow(row) {
    var tr = document.createElement("tr");
    tr.dataset.session = row.id;
    var viewer = document.createElement("td");
    var link = document.createElement("a");
    link.href = "/staff/sessions/" + row.id + "/";
    link.textContent = row.viewer;
    viewer.appendChild(link);
    tr.appendChild(viewer);
    tr.appendChild(cell(row.title, "session-title"));
    tr.appendChild(cell(row.device));
    var position = cell("", "num");
    position.dataset.field = "position";
    tr.appendChild(position);
    var state = cell("");
    state.dataset.field = "state";
    state.appendChild(document.createElement("span"));
    tr.appendChild(state);
    var score = cell("", "num");
    score.dataset.field = "score";
    tr.appendChild(score);
    var spark = cell("");
    spark.dataset.field = "sparkline";
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "sparkline");
    svg.setAttribute("width", SPARK_WIDTH);
    svg.setAttribute("height", SPARK_HEIGHT);
    svg.setAttribute("viewBox", "0 0 " + SPARK_WIDTH + " " + SPARK_HEIGHT);
    svg.setAttribute("role", "img");
    svg.appendChild(document.createElementNS(ns, "polyline"));
    spark.appendChild(svg);
    tr.appendChild(spark);
    return tr;
  }

  // Where each row's position stood, and when (this page's clock).
  var positions = new WeakMap();

  function showPosition(tr) {
    var base = positions.get(tr);
    if (!base) return;
    var position = base.position;
    if (tr.dataset.state === "playing") {
      position = Math.min(base.duration, position + (Date.now() - base.since) / 1000);
    }
    tr.querySelector('[data-field="position"]').textContent =
      clock(position) + " / " + clock(base.duration);
  }

  function fill(tr, row) {
    tr.dataset.state = row.state;
    positions.set(tr, {
      position: row.position_seconds,
      duration: row.duration_seconds,
      since: Date.now(),
    });
    showPosition(tr);
    var badge = tr.querySelector('[data-field="state"] span');
    badge.className = "badge badge-session-" + slug(row.state);
    badge.textContent = row.state;
    tr.querySelector('[data-field="score"]').textContent = percent(row.score);
    var svg = tr.querySelector('[data-field="sparkline"] svg');
    svg.setAttribute("aria-label", "Score history: " + row.history.length + " points");
    svg.querySelector("polyline").setAttribute("points", sparkline(row.history));
  }

  function showSessions(rows) {
    var body = table.tBodies[0];
    rows.forEach(function (row) {
      if (single !== null && row.id !== single) return;
      var tr = body.querySelector('tr[data-session="' + row.id + '"]');
      if (!tr) {
        if (!listing || !row.open) return; // a list of open sessions: ended unknowns stay out
        tr = newRow(row);
        body.insertBefore(tr, body.firstChild);
        while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
      }
      fill(tr, row);
      if (listing && !row.open && !tr.dataset.leaving) {
        tr.dataset.leaving = "1";
        window.setTimeout(function () {
          if (tr.parentNode) tr.parentNode.removeChild(tr);
          showEmpty();
        }, ENDED_STAY_MS);
      }
    });
    showEmpty();
  }

  function showEmpty() {
    var empty = document.querySelector("[data-empty]");
    if (empty && table) empty.hidden = table.tBodies[0].rows.length > 0;
  }

  function showViewing(message) {
    var values = {
      active_sessions: count(message.active_sessions),
      average_live_score: percent(message.average_live_score),
      average_engagement: percent(message.average_engagement),
    };
    Object.keys(values).forEach(function (key) {
      document.querySelectorAll('[data-figure="' + key + '"]').forEach(function (element) {
        element.textContent = values[key];
      });
    });
  }

  if (table) {
    Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) {
      positions.set(tr, {
        position: Number(tr.dataset.position),
        duration: Number(tr.dataset.duration),
        since: Date.now(),
      });
    });
    window.setInterval(function () {
      Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) {
        if (tr.dataset.state === "playing") showPosition(tr);
      });
    }, 1000);
  }

  var failures = 0;
  function setState(state, text) {
    root.dataset.state = state;
    if (status) status.textContent = text;
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + root.dataset.staffSocket);
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
      if (message.type === "sessions" && table) showSessions(message.sessions);
      if (message.type === "viewing") showViewing(message);
    };
    socket.onclose = function (event) {
      if (event.code === NOT_STAFF) {
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
})();

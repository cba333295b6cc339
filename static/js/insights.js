/* The insights chat. Posts a question form with fetch and shows its answer where the form
   says (`data-target`, `data-swap`): a draft at once, then, when an LLM answers, what it is
   doing and its words as they come (server-sent events: "status", "delta"), and last the
   checked answer ("final", HTML), which replaces the draft — the draft's numbers are not yet
   checked. Without an LLM the answer comes as HTML in one piece. Refusals (400, 429) are
   shown like answers. Also draws each answer's chart from its json_script block and asks a
   suggested question with one click. Loaded with `defer` after Chart.js; loaded twice (page
   and panel), it runs once. */
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

  function draft(question) {
    var article = document.createElement("article");
    article.className = "insights-exchange insights-draft";
    article.innerHTML =
      '<p class="insights-question"><strong></strong></p>' +
      '<p class="muted insights-status" role="status"><small>Looking it up…</small></p>' +
      '<p class="insights-answer insights-draft-text"></p>';
    article.querySelector("strong").textContent = question;
    return article;
  }

  // Put the answer's HTML in place of the draft; keep its conversation for the next question.
  function settle(form, placeholder, html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var id = template.content.querySelector("[data-conversation-id]");
    if (id) {
      form.querySelector("[data-conversation]").value = id.value;
      id.remove();
    }
    var parent = placeholder.parentNode;
    placeholder.replaceWith(template.content);
    draw(parent);
  }

  async function readStream(response, form, placeholder) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var status = placeholder.querySelector(".insights-status small");
    var text = placeholder.querySelector(".insights-draft-text");
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      var events = buffer.split("\n\n");
      buffer = events.pop();
      events.forEach(function (block) {
        var name = "message";
        var data = [];
        block.split("\n").forEach(function (line) {
          if (line.indexOf("event: ") === 0) name = line.slice(7);
          else if (line.indexOf("data: ") === 0) data.push(line.slice(6));
        });
        data = data.join("\n");
        if (name === "status") status.textContent = data;
        else if (name === "delta") {
          status.textContent = "Writing… (the numbers are checked when the answer is complete)";
          text.textContent += data;
        } else if (name === "final") settle(form, placeholder, data);
      });
    }
  }

  document.addEventListener("submit", async function (event) {
    var form = event.target.closest && event.target.closest("form.insights-form");
    if (!form || !window.fetch) return;
    event.preventDefault();
    var target = document.querySelector(form.dataset.target);
    var input = form.querySelector("input[name=question]");
    var button = form.querySelector("button[type=submit]");
    var body = new FormData(form);
    var placeholder = draft(input.value);
    if (form.dataset.swap === "innerHTML") target.innerHTML = "";
    target.appendChild(placeholder);
    button.disabled = true;
    try {
      var response = await fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { Accept: "text/event-stream, text/html", "HX-Request": "true" },
      });
      if ((response.headers.get("Content-Type") || "").indexOf("text/event-stream") === 0) {
        await readStream(response, form, placeholder);
      } else if (response.ok || response.status === 400 || response.status === 429) {
        settle(form, placeholder, await response.text());
      } else {
        placeholder.querySelector(".insights-status small").textContent =
          "Something went wrong (" + response.status + "): please try again.";
      }
      if (response.ok) input.value = "";
    } catch (error) {
      placeholder.querySelector(".insights-status small").textContent =
        "The answer could not be fetched: please try again.";
    } finally {
      button.disabled = false;
    }
  });

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-suggestion]");
    if (!button) return;
    var form = document.querySelector("form.insights-form");
    form.querySelector("input[name=question]").value = button.dataset.suggestion;
    form.requestSubmit();
  });
})();

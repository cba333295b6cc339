// A searchable title picker over a plain <select multiple data-title-picker> (~1,700 titles):
// a search box that hides the titles that do not match, a click that picks or drops a title
// without Ctrl/Cmd, and the picked titles listed as buttons that drop them. Without this
// script the select still works with Ctrl/Cmd-click. Every change fires the select's "change"
// event, so the reach preview (htmx, listening on the form) asks again.
(function () {
  "use strict";

  function changed(select) {
    select.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function enhance(select) {
    var options = Array.prototype.slice.call(select.options);
    var label = select.labels && select.labels[0] ? select.labels[0].textContent.trim() : "titles";

    var search = document.createElement("input");
    search.type = "search";
    search.className = "title-picker-search";
    search.placeholder = "Search " + options.length.toLocaleString("en-US") + " titles";
    search.setAttribute("aria-label", "Search: " + label);
    search.setAttribute("aria-controls", select.id);

    var count = document.createElement("small");
    count.className = "title-picker-count muted";
    count.setAttribute("aria-live", "polite");

    var chosen = document.createElement("ul");
    chosen.className = "title-picker-chosen";
    chosen.setAttribute("aria-label", "Picked: " + label);

    select.parentNode.insertBefore(search, select);
    select.parentNode.insertBefore(chosen, select.nextSibling);
    select.parentNode.insertBefore(count, chosen);

    function filter() {
      var words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      options.forEach(function (option) {
        var text = option.text.toLowerCase();
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        option.hidden = !match;
        if (match) shown += 1;
      });
      count.textContent = words.length
        ? shown.toLocaleString("en-US") + " of " + options.length.toLocaleString("en-US") + " titles match"
        : "";
    }

    function listChosen() {
      chosen.textContent = "";
      options.forEach(function (option) {
        if (!option.selected) return;
        var item = document.createElement("li");
        var button = document.createElement("button");
        button.type = "button";
        button.className = "secondary outline";
        button.textContent = option.text + " ×";
        button.title = "Remove " + option.text;
        button.addEventListener("click", function () {
          option.selected = false;
          listChosen();
          changed(select);
        });
        item.appendChild(button);
        chosen.appendChild(item);
      });
    }

    // A click picks or drops one title, keeping the others (no Ctrl/Cmd needed).
    select.addEventListener("mousedown", function (event) {
      var option = event.target;
      if (option.tagName !== "OPTION") return;
      event.preventDefault();
      var top = select.scrollTop;
      option.selected = !option.selected;
      select.focus();
      select.scrollTop = top;
      listChosen();
      changed(select);
    });
    select.addEventListener("change", listChosen);
    search.addEventListener("input", filter);
    // Enter in the search box must not submit the form.
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") event.preventDefault();
    });
    listChosen();
  }

  function init() {
    document.querySelectorAll("select[data-title-picker]").forEach(enhance);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

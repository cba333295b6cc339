// The reach preview shows its 400 answers too (a value it cannot read yet, named): htmx swaps
// only 2xx answers by default. A listener here, not hx-on in the template: the page's
// Content-Security-Policy runs no inline code.
(function () {
  "use strict";

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.target.hasAttribute("data-swap-bad-request") && event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();

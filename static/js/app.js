/* Small behaviours every staff page may use, declared in the markup with data attributes.
   The Content-Security-Policy allows no inline scripts or on* handlers, so they live here.

   data-copy-target="<input id>"  on a button: copies that input's value, then says "Copied".
   data-select-all                on a read-only input: a click or focus selects all of it.
   data-autosubmit                on a select: choosing an option submits its form.
   data-confirm="<question>"      on a plain form: asks first; Cancel stops the submit
                                  (htmx forms and buttons use hx-confirm).

   A request htmx cancels itself, because a newer one replaces it (hx-sync "replace", as
   the Analytics filters do when they change quickly), is not an error: htmx would still
   write two console errors for it (htmx:afterRequest, htmx:sendAbort). */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (button) copy(document.getElementById(button.dataset.copyTarget), button);
    var input = event.target.closest("input[data-select-all]");
    if (input) input.select();
  });

  document.addEventListener("focusin", function (event) {
    if (event.target.matches("input[data-select-all]")) event.target.select();
  });

  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.requestSubmit();
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  // htmx cancels by dispatching htmx:abort; the request is aborted, and htmx logs, while
  // that event is on its way (the XHR's abort is synchronous). Errors of any other kind,
  // a failed network request included, are still written.
  var cancelling = 0;
  document.addEventListener("htmx:abort", function () { cancelling += 1; }, true);
  document.addEventListener("htmx:abort", function () { cancelling -= 1; });
  var consoleError = console.error;
  console.error = function (message) {
    if (cancelling > 0 && typeof message === "string" && /^htmx:(afterRequest|sendAbort)\b/.test(message)) return;
    consoleError.apply(console, arguments);
  };

  function copy(input, button) {
    if (!input) return;
    input.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done);
    } else if (document.execCommand("copy")) {
      done();
    }
  }
})();

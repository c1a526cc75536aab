/* Small behaviours every staff page may use, declared in the markup with data attributes.
   The Content-Security-Policy allows no inline scripts or on* handlers, so they live here.

   data-copy-target="<input id>"  on a button: copies that input's value, then says "Copied".
   data-select-all                on a read-only input: a click or focus selects all of it.
   data-autosubmit                on a select: choosing an option submits its form.
   data-confirm="<question>"      on a plain form: asks first; Cancel stops the submit
                                  (htmx forms and buttons use hx-confirm).
   data-announce="<region id>"    on an element htmx redraws: its text is copied into that
                                  aria-live region (which stays put) when it changes, so a
                                  screen reader hears the new count once, not every redraw.
   data-focus-on-swap             on an element htmx brings in (a heading with tabindex="-1"):
                                  it takes the focus once, so the keyboard follows the user. */
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

  function announce() {
    document.querySelectorAll("[data-announce]").forEach(function (source) {
      var region = document.getElementById(source.dataset.announce);
      var text = source.textContent.replace(/\s+/g, " ").trim();
      if (region && region.textContent !== text) region.textContent = text;
    });
  }

  function focusSwapped() {
    var target = document.querySelector("[data-focus-on-swap]");
    if (!target) return;
    target.removeAttribute("data-focus-on-swap");
    target.focus();
  }

  // A code block that scrolls sideways can be reached and scrolled from the keyboard.
  function focusableCode() {
    document.querySelectorAll("pre.code-block:not([tabindex])").forEach(function (pre) {
      pre.tabIndex = 0;
    });
  }

  document.addEventListener("htmx:afterSettle", function () {
    announce();
    focusSwapped();
    focusableCode();
  });
  document.addEventListener("htmx:oobAfterSwap", announce);
  document.addEventListener("DOMContentLoaded", function () {
    announce();
    focusableCode();
    // The side navigation's highlighted link is the current page for screen readers too.
    document.querySelectorAll(".sidebar a.active").forEach(function (link) {
      link.setAttribute("aria-current", "page");
    });
  });

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

/* Small behaviours every staff page may use, declared in the markup with data attributes.
   The Content-Security-Policy allows no inline scripts or on* handlers, so they live here.

   data-copy-target="<input id>"  on a button: copies that input's value, then says "Copied".
   data-select-all                on a read-only input: a click or focus selects all of it.
   data-autosubmit                on a select: choosing an option submits its form.
   data-confirm="<question>"      on a plain form: asks first; Cancel stops the submit
                                  (htmx forms and buttons use hx-confirm).
   data-bulk-bar                  on the personas list's bulk form: its rows' checkboxes
                                  (data-bulk-row), the page's (data-bulk-page) and "all
                                  matching" (data-bulk-all) stay in step, the count
                                  (data-bulk-count) says what is selected, and the action
                                  buttons (data-bulk-action) wait for a selection.
   data-nav-toggle                on the top bar's Menu button (aria-controls names the nav):
                                  opens and closes the navigation under 900 px; Escape, a
                                  click outside it or widening the window closes it.
   data-row-open                  on a tbody: a tap anywhere on a row follows the row's first
                                  [data-row-link] (the queue's counter mode).
   data-scroll-into-view          on an element htmx swaps in: brought on screen when it
                                  lands below the fold (the queue's profile on a tablet).
   data-announce="<region id>"    on an element htmx redraws: its text is copied into that
                                  aria-live region (which stays put) when it changes, so a
                                  screen reader hears the new count once, not every redraw.
   data-focus-on-swap             on an element htmx brings in (a heading with tabindex="-1"):
                                  it takes the focus once, so the keyboard follows the user.

   A request htmx cancels itself, because a newer one replaces it (hx-sync "replace", as
   the Analytics filters do when they change quickly), is not an error: htmx would still
   write two console errors for it (htmx:afterRequest, htmx:sendAbort). */
(function () {
  "use strict";

  // -- The navigation behind the Menu button --------------------------------------------------
  var wide = window.matchMedia("(min-width: 901px)");

  function navParts() {
    var toggle = document.querySelector("[data-nav-toggle]");
    var nav = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
    return nav ? { toggle: toggle, nav: nav } : null;
  }

  function setNav(open, returnFocus) {
    var parts = navParts();
    if (!parts) return;
    parts.nav.classList.toggle("open", open);
    parts.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open && returnFocus) parts.toggle.focus();
  }

  function navOpen() {
    var parts = navParts();
    return Boolean(parts && parts.nav.classList.contains("open"));
  }

  // Capture: a click beside the open menu only closes it, it does not reach the page under it.
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-nav-toggle]");
    if (toggle) {
      setNav(!navOpen(), false);
      return;
    }
    if (navOpen() && !event.target.closest(".sidebar")) {
      event.preventDefault();
      event.stopPropagation();
      setNav(false, false);
    }
  }, true);

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && navOpen()) setNav(false, true);
  });

  wide.addEventListener("change", function () { if (wide.matches) setNav(false, false); });

  // -- Rows that open with one tap ---------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var row = event.target.closest("[data-row-open] tr");
    if (!row || event.target.closest("a, button, input, select, label, summary")) return;
    var link = row.querySelector("[data-row-link]");
    if (link) link.click();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    var landed = target && target.isConnected ? target : document.getElementById(target && target.id);
    if (!landed || !landed.matches("[data-scroll-into-view]")) return;
    var top = landed.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight / 2) {
      landed.scrollIntoView({ behavior: "smooth", block: "start" });
    }
  });

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
    var bulk = event.target.closest("[data-bulk-row], [data-bulk-page], [data-bulk-all]");
    if (bulk) bulkChanged(bulk);
    var select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.requestSubmit();
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  function bulkRows() {
    return Array.prototype.slice.call(document.querySelectorAll("input[data-bulk-row]"));
  }

  function bulkChanged(input) {
    var bar = document.querySelector("[data-bulk-bar]");
    if (!bar) return;
    var all = bar.querySelector("[data-bulk-all]");
    if (input.matches("[data-bulk-page]")) {
      bulkRows().forEach(function (row) { row.checked = input.checked; });
      if (!input.checked && all) all.checked = false;
    } else if (input.matches("[data-bulk-all]")) {
      if (input.checked) bulkRows().forEach(function (row) { row.checked = true; });
    } else if (!input.checked && all) {
      all.checked = false;
    }
    bulkSync();
  }

  function bulkSync() {
    var bar = document.querySelector("[data-bulk-bar]");
    if (!bar) return;
    var rows = bulkRows();
    var ticked = rows.filter(function (row) { return row.checked; }).length;
    var all = bar.querySelector("[data-bulk-all]");
    var page = document.querySelector("[data-bulk-page]");
    if (page) {
      page.checked = rows.length > 0 && ticked === rows.length;
      page.indeterminate = ticked > 0 && ticked < rows.length;
    }
    var total = Number(bar.dataset.bulkTotal);
    var count = all && all.checked ? total : ticked;
    var label = bar.querySelector("[data-bulk-count]");
    if (label) {
      label.textContent = count === 0 ? "Tick personas to act on them"
        : (all && all.checked ? "All " : "") + count.toLocaleString("en-US") + " selected";
    }
    bar.classList.toggle("has-selection", count > 0);
    bar.querySelectorAll("[data-bulk-action]").forEach(function (button) { button.disabled = count === 0; });
  }

  document.addEventListener("DOMContentLoaded", bulkSync);
  document.addEventListener("htmx:afterSettle", bulkSync);
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

// Audience builder: outline the condition or group the count card's error points at.
// The server draws the outline too; this keeps it in step as the count updates alone.
(function () {
  function mark() {
    var problem = document.querySelector("#audience-count [data-error-path]");
    var path = problem ? problem.getAttribute("data-error-path") : null;
    document.querySelectorAll("#rules-editor [data-path]").forEach(function (node) {
      node.classList.toggle("has-error", node.getAttribute("data-path") === path);
    });
  }
  document.addEventListener("htmx:afterSettle", mark);
  document.addEventListener("DOMContentLoaded", mark);

  // Typing in a value box asks for a new count (the count card listens for "rules-input");
  // controls that post the editor themselves bring their own count back.
  document.addEventListener("input", function (event) {
    var form = event.target.closest("#builder-form");
    if (form && !event.target.hasAttribute("hx-post")) form.dispatchEvent(new Event("rules-input"));
  });
})();

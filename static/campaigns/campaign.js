/* Campaign pages: the compose form shows the fields of the chosen channel only, and the
   cost estimate follows the chosen audience. */
(function () {
  "use strict";

  function showChannel(form) {
    var checked = form.querySelector("input[name=channel]:checked");
    var channel = checked ? checked.value : "sms";
    form.querySelectorAll("[data-channel]").forEach(function (set) {
      set.hidden = set.dataset.channel !== channel;
    });
  }

  // The cost estimate under the message is for the chosen audience's size.
  function audienceChosen(form) {
    var select = form.querySelector("select[data-audience-select]");
    var counter = form.querySelector("[data-sms-counter]");
    var textarea = form.querySelector("textarea[data-sms-body]");
    if (!select || !counter) return;
    var option = select.options[select.selectedIndex];
    counter.setAttribute("data-recipients", (option && option.dataset.size) || "");
    if (textarea && window.smsCompose) window.smsCompose.update(textarea);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-channel-form]").forEach(function (form) {
      showChannel(form);
      audienceChosen(form);
      form.addEventListener("change", function (event) {
        if (event.target.name === "channel") showChannel(form);
        if (event.target.matches("select[data-audience-select]")) audienceChosen(form);
      });
    });
  });
})();

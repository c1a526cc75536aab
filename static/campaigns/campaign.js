/* Campaign pages: the compose form shows the fields of the chosen channel only. */
(function () {
  "use strict";

  function showChannel(form) {
    var checked = form.querySelector("input[name=channel]:checked");
    var channel = checked ? checked.value : "sms";
    form.querySelectorAll("[data-channel]").forEach(function (set) {
      set.hidden = set.dataset.channel !== channel;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-channel-form]").forEach(function (form) {
      showChannel(form);
      form.addEventListener("change", function (event) {
        if (event.target.name === "channel") showChannel(form);
      });
    });
  });
})();

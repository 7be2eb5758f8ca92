// Small behaviours of the portal's pages; everything works without them.
(function () {
  "use strict";

  // Deadlines count down every minute without a reload, in the page's language.
  var source = document.getElementById("countdown-labels");
  var labels = source ? JSON.parse(source.textContent) : null;
  function fill(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }
  function span(ms) {
    var minutes = Math.floor(Math.abs(ms) / 60000);
    var values = { days: Math.floor(minutes / 1440), hours: Math.floor((minutes % 1440) / 60), minutes: minutes % 60 };
    return fill(values.days ? labels.d : values.hours ? labels.h : labels.m, values);
  }
  function tick() {
    if (!labels) { return; }
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var ms = new Date(el.getAttribute("datetime")) - new Date();
      el.textContent = fill(ms > 0 ? labels.left : labels.overdue, { span: span(ms) });
    });
  }
  setInterval(tick, 60000);

  // The language picker submits itself.
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-submit-on-change]")) {
      event.target.form.submit();
    }
  });

  // "Select all" ticks every row on the page; "all matching" is a separate choice.
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-select-all]")) {
      var table = event.target.closest("table");
      table.querySelectorAll("tbody input[type=checkbox]").forEach(function (box) {
        box.checked = event.target.checked;
      });
    }
  });
})();

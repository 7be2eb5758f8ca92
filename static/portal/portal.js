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

  // Ticked rows of a list. The list refreshes itself every 30 s and when the
  // filter changes; what the person ticked is kept here and ticked again in
  // the new rows (rows that left the list drop out of the selection).
  var ticked = {};
  var allMatching = false;
  function rowBoxes() {
    return document.querySelectorAll("#results tbody input[type=checkbox][name=select]");
  }
  function remember(box) {
    if (box.checked) { ticked[box.value] = true; } else { delete ticked[box.value]; }
  }
  function showSelection() {
    var form = document.querySelector("[data-selection]");
    if (!form) { return; }
    var chosen = Object.keys(ticked);
    var counter = form.querySelector("[data-selected-count]");
    if (counter) { counter.textContent = chosen.length; }
    var submit = form.querySelector("#bulk-submit");
    if (submit) { submit.disabled = chosen.length === 0 && !allMatching; }
    var labelsLink = form.querySelector("[data-labels-link]");
    if (labelsLink) {
      labelsLink.href = labelsLink.href.split("?")[0] + "?" + chosen.map(function (no) {
        return "select=" + encodeURIComponent(no);
      }).join("&");
      labelsLink.classList.toggle("disabled", chosen.length === 0);
      labelsLink.setAttribute("aria-disabled", chosen.length === 0 ? "true" : "false");
    }
    var boxes = rowBoxes();
    var all = form.querySelector("[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && Array.prototype.every.call(boxes, function (box) { return box.checked; });
    }
  }
  function restoreSelection() {
    var present = {};
    rowBoxes().forEach(function (box) {
      present[box.value] = true;
      box.checked = !!ticked[box.value];
    });
    Object.keys(ticked).forEach(function (no) { if (!present[no]) { delete ticked[no]; } });
    var matching = document.getElementById("all-matching");
    if (matching) { matching.checked = allMatching; }
    showSelection();
  }
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.matches("[data-select-all]")) {
      box.closest("table").querySelectorAll("tbody input[type=checkbox][name=select]").forEach(function (row) {
        row.checked = box.checked;
        remember(row);
      });
    } else if (box.matches("#results input[type=checkbox][name=select]")) {
      remember(box);
    } else if (box.id === "all-matching") {
      allMatching = box.checked;
    } else {
      return;
    }
    showSelection();
  });
  document.addEventListener("htmx:afterSettle", restoreSelection);
  // A click on the bulk bar must land on the button it aimed at, not on one
  // the list's periodic refresh is replacing: the refresh waits while the
  // pointer or the keyboard is on the bar (a filter change still refreshes).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var list = event.detail.elt;
    if (list.id !== "results") { return; }
    var bar = list.querySelector(".bulk-bar");
    if (bar && (bar.matches(":hover") || bar.contains(document.activeElement))) {
      event.preventDefault();
    }
  });
  // The browser may restore ticks on "back"; start from what is on screen.
  rowBoxes().forEach(remember);
  showSelection();

  // On an order page reached from a worklist, "n" opens the next order of that list.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "n" || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.target.closest("input, textarea, select, [contenteditable]")) { return; }
    var next = document.querySelector("[data-next-order]");
    if (next) { window.location.href = next.href; }
  });
})();

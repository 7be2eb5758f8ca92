// The scan station: a keyboard-wedge scanner types a number and Enter, often
// faster than the server answers. Each number is taken off the field at once
// (so the next scan starts clean), queued, and sent one at a time in the order
// scanned; its answer replaces a "sending" line. Nothing reloads the page.
(function () {
  "use strict";
  var form = document.getElementById("scan-form");
  if (!form) { return; }
  var field = document.getElementById("scan-code");
  var log = document.getElementById("scan-log");
  var sound = document.getElementById("scan-sound");
  var labels = document.getElementById("scan-labels");
  var queue = [];
  var busy = false;
  var audio = null;

  sound.checked = window.localStorage.getItem(form.dataset.soundKey) === "1";
  sound.addEventListener("change", function () {
    window.localStorage.setItem(form.dataset.soundKey, sound.checked ? "1" : "0");
    field.focus();
  });

  function beep(ok) {
    if (!sound.checked) { return; }
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var tone = audio.createOscillator();
      var gain = audio.createGain();
      tone.frequency.value = ok ? 880 : 220;
      tone.type = ok ? "sine" : "square";
      gain.gain.value = 0.08;
      tone.connect(gain);
      gain.connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + (ok ? 0.12 : 0.35));
    } catch (e) { /* no sound on this device */ }
  }

  function flash(ok) {
    field.classList.remove("is-valid", "is-invalid");
    void field.offsetWidth;  // restart the animation on repeated scans
    field.classList.add(ok ? "is-valid" : "is-invalid");
    beep(ok);
  }

  function tally() {
    var counts = { done: 0, already: 0, refused: 0 };
    log.querySelectorAll(".scan-line").forEach(function (line) {
      var outcome = line.dataset.outcome;
      counts[outcome === "done" || outcome === "already" ? outcome : "refused"] += 1;
    });
    Object.keys(counts).forEach(function (key) {
      document.querySelector('[data-tally="' + key + '"]').textContent = counts[key];
    });
    if (labels) {
      var printed = log.querySelectorAll('.scan-line[data-outcome="done"][data-waybill]:not([data-waybill=""])');
      var query = Array.prototype.map.call(printed, function (line) {
        return "select=" + encodeURIComponent(line.dataset.order);
      });
      labels.href = labels.href.split("?")[0] + "?" + query.join("&");
      labels.classList.toggle("d-none", query.length === 0);
    }
  }

  function pendingLine(code) {
    var line = document.createElement("li");
    line.className = "list-group-item scan-pending";
    line.textContent = code + " — " + log.dataset.pending;
    log.insertBefore(line, log.firstChild);
    return line;
  }

  function send() {
    if (busy || queue.length === 0) { return; }
    busy = true;
    var item = queue.shift();
    var body = new FormData(form);
    body.set("code", item.code);
    fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-Requested-With": "scan-station" }
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.text();
    }).then(function (html) {
      var holder = document.createElement("ol");
      holder.innerHTML = html;
      var lines = Array.prototype.slice.call(holder.children);
      lines.forEach(function (line) { log.insertBefore(line, item.line); });
      item.line.remove();
      flash(lines.length > 0 && lines.every(function (line) { return line.dataset.ok === "1"; }));
    }).catch(function () {
      item.line.className = "list-group-item list-group-item-danger scan-line";
      item.line.dataset.outcome = "failed";
      item.line.textContent = item.code + " — " + log.dataset.failed;
      flash(false);
    }).then(function () {
      busy = false;
      tally();
      send();
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var code = field.value.trim();
    field.value = "";
    field.focus();
    if (!code) { return; }
    queue.push({ code: code, line: pendingLine(code) });
    send();
  });

  // Choosing the appraisal result with the mouse must not leave the scanner typing into nothing.
  form.addEventListener("change", function (event) {
    if (event.target.name === "result") { field.focus(); }
  });
  tally();
})();

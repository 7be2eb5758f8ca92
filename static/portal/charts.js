// The dashboard's charts, drawn with Chart.js from the numbers each chart's
// element carries (a <script type="application/json"> made by json_script).
// Every bar leads to the list behind it; the same numbers, with the same
// links, are in the table under each chart, so nothing depends on this file.
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") { return; }

  var PALETTE = ["#d9480f", "#1c7ed6", "#2f9e44", "#f59f00", "#7048e8", "#c2255c", "#0c8599", "#5c940d",
    "#862e9c", "#495057"];

  // Marks the canvas once Chart.js has painted it (read by the browser tests).
  var drawnMarker = {
    id: "drawnMarker",
    afterRender: function (chart) { chart.canvas.setAttribute("data-drawn", "true"); }
  };

  function colours(set, index, count) {
    if (set.tone) { return set.tone; }
    if (count === 1) {
      return set.data.map(function (_, bar) { return PALETTE[bar % PALETTE.length]; });
    }
    return PALETTE[index % PALETTE.length];
  }

  // Long category names (rules, states) are cut short where the chart is narrow;
  // the tooltip and the table give them whole.
  function shortened(label, width) {
    var room = width < 500 ? 18 : 40;
    return label.length > room ? label.slice(0, room - 1) + "…" : label;
  }

  function linkAt(spec, element) {
    var set = spec.datasets[element.datasetIndex];
    return set && set.links ? set.links[element.index] : null;
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) { return; }
    var spec = JSON.parse(source.textContent);
    var horizontal = spec.shape === "hbar";
    var valueAxis = {
      beginAtZero: true,
      stacked: spec.stacked,
      title: { display: true, text: spec.axis },
      ticks: { precision: spec.unit === "count" ? 0 : undefined }
    };
    var categoryAxis = { stacked: spec.stacked, ticks: { autoSkip: !horizontal } };
    if (horizontal) {
      categoryAxis.ticks.callback = function (value) {
        return shortened(this.getLabelForValue(value), this.chart.width);
      };
      // A row per category, however many there are.
      var rows = spec.labels.length * (spec.stacked ? 1 : spec.datasets.length);
      canvas.parentNode.style.height = Math.max(224, 64 + rows * 22) + "px";
    }
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (set, index) {
          var colour = colours(set, index, spec.datasets.length);
          return { label: set.label, data: set.data, backgroundColor: colour, borderColor: colour };
        })
      },
      plugins: [drawnMarker],
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: horizontal ? { x: valueAxis, y: categoryAxis } : { x: categoryAxis, y: valueAxis },
        interaction: { mode: "nearest", intersect: true },
        plugins: {
          legend: { display: spec.datasets.length > 1, position: "bottom" },
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? spec.labels[items[0].dataIndex] : ""; },
              // The numbers as the page writes them (¥1,234.50, 3h 20m), not raw.
              label: function (item) {
                var set = spec.datasets[item.datasetIndex];
                return spec.pair.replace("%(label)s", set.label).replace("%(value)s", set.display[item.dataIndex]);
              },
              afterBody: function (items) {
                return items.length ? spec.details[items[0].dataIndex] : [];
              }
            }
          }
        },
        onClick: function (event, elements) {
          var link = elements.length ? linkAt(spec, elements[0]) : null;
          if (link) { window.location.assign(link); }
        },
        onHover: function (event, elements) {
          var link = elements.length ? linkAt(spec, elements[0]) : null;
          event.native.target.style.cursor = link ? "pointer" : "default";
        }
      }
    });
  }

  document.querySelectorAll("canvas[data-chart]").forEach(draw);
})();

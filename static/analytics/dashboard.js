/*
 * Draws the admin analytics page from the report the server embedded with
 * json_script (#analytics-data): no inline script, no eval, no network calls,
 * so it runs under a strict Content-Security-Policy. Chart.js is the vendored
 * UMD build (static/vendor/chartjs/).
 */
(function () {
  "use strict";

  var COLORS = {
    requests: "#417690",
    errors: "#ba2121",
    rate: "#c77700",
    p50: "#2e7d32",
    p95: "#c77700",
    p99: "#ba2121",
    bars: "#79aec8"
  };

  function label(iso, granularity) {
    // Buckets are UTC: show them as UTC, whatever the browser's zone.
    var text = String(iso).replace("T", " ");
    return granularity === "day" ? text.slice(0, 10) : text.slice(5, 16);
  }

  function line(canvas, labels, datasets, yOptions) {
    return new window.Chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        spanGaps: true,
        interaction: { mode: "index", intersect: false },
        elements: { point: { radius: 0 } },
        scales: { y: Object.assign({ beginAtZero: true }, yOptions || {}) }
      }
    });
  }

  function bars(canvas, rows, color) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: rows.map(function (row) { return row.name || row.key + " (deleted)"; }),
        datasets: [
          { label: "Requests", data: rows.map(function (row) { return row.requests; }), backgroundColor: color },
          { label: "Errors", data: rows.map(function (row) { return row.errors; }), backgroundColor: COLORS.errors }
        ]
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: "y",
        scales: { x: { beginAtZero: true } }
      }
    });
  }

  function dataset(name, values, color, extra) {
    return Object.assign({ label: name, data: values, borderColor: color, backgroundColor: color, borderWidth: 2 }, extra || {});
  }

  function draw() {
    var source = document.getElementById("analytics-data");
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var report = JSON.parse(source.textContent);
    var series = report.series;
    var granularity = report.query.granularity;
    var labels = series.map(function (point) { return label(point.bucket_start, granularity); });
    var pick = function (name) { return series.map(function (point) { return point[name]; }); };

    line(document.getElementById("chart-requests"), labels, [
      dataset("Requests", pick("requests"), COLORS.requests, { fill: false }),
      dataset("Errors", pick("errors"), COLORS.errors, { fill: false })
    ]);
    line(
      document.getElementById("chart-error-rate"),
      labels,
      [dataset("Error rate (%)", series.map(function (point) {
        return point.error_rate === null ? null : Math.round(point.error_rate * 10000) / 100;
      }), COLORS.rate)],
      { suggestedMax: 5 }
    );
    line(document.getElementById("chart-latency"), labels, [
      dataset("p50", pick("p50"), COLORS.p50),
      dataset("p95", pick("p95"), COLORS.p95),
      dataset("p99", pick("p99"), COLORS.p99)
    ]);
    bars(document.getElementById("chart-top-apis"), report.top_apis, COLORS.bars);
    bars(document.getElementById("chart-top-consumers"), report.top_consumers, COLORS.bars);
    bars(document.getElementById("chart-deny-reasons"), report.deny_reasons, COLORS.rate);
    document.body.setAttribute("data-analytics-drawn", "true");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();

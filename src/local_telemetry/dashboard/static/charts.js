// Local Telemetry dashboard charts (overview and agent pages), drawn with uPlot.
// The data comes from <script type="application/json" id="chart-data"> (rendered by the
// server, never executed); each <div data-chart="NAME"> becomes one chart. Colours are
// read from the CSS variables, so the charts follow the light/dark theme (and are
// redrawn when it changes); charts are resized with their box. uPlot cannot stack, so
// runs by status are drawn as bars of the cumulative counts, the tallest first, each
// lower status painted over the ones above it; legend and cursor show the raw counts.
(function () {
  "use strict";

  var HEIGHT = 220;
  var DASH = "\u2013";
  var drawn = [];

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  function duration(ms) {
    if (ms < 1000) return Math.round(ms) + " ms";
    var s = ms / 1000;
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  var FORMATS = {
    int: function (v) { return Math.round(v).toLocaleString("en-US"); },
    rate: function (v) { return (v * 100).toFixed(1) + "%"; },
    cost: function (v) { return "$" + (Math.abs(v) < 1 ? v.toFixed(4) : v.toFixed(2)); },
    ms: duration
  };

  function formatter(name) {
    var format = FORMATS[name] || String;
    return function (v) { return v === null || v === undefined ? DASH : format(v); };
  }

  function bucketLabel(seconds, unit) {
    var text = new Date(seconds * 1000).toISOString();
    return unit === "hour" ? text.slice(0, 13).replace("T", " ") + ":00 UTC" : text.slice(0, 10);
  }

  function withAlpha(colour, alpha) {
    var hex = /^#([0-9a-f]{6})$/i.exec(colour);
    if (!hex) return colour;
    var n = parseInt(hex[1], 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function options(spec, unit, width) {
    var fmt = formatter(spec.format);
    var step = unit === "hour" ? 3600 : 86400;
    var muted = css("--muted"), line = css("--line");
    var axis = { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    var yAxis = Object.assign({}, axis, {
      size: 64,
      values: function (u, values) { return values.map(fmt); }
    });
    // Counts: whole-number ticks only (no "1, 1, 2, 2" from rounded fractions).
    if (spec.format === "int") yAxis.incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000,
      5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000];
    var y = { auto: true };
    if (spec.format === "rate") y = { auto: false, range: [0, 1] };
    else y = { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } };
    var bars = spec.kind === "stacked" || spec.kind === "bars";
    return {
      width: width,
      height: HEIGHT,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: {
        x: {
          time: true,
          range: function (u, min, max) {
            return bars ? [min - step / 2, max + step / 2] : [min, max === min ? min + step : max];
          }
        },
        y: y
      },
      axes: [axis, yAxis],
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false }, points: { show: !bars } },
      series: [{ value: function (u, v) { return v === null ? DASH : bucketLabel(v, unit); } }]
    };
  }

  function build(el, spec, x, unit) {
    var width = Math.max(el.clientWidth, 200);
    var opts = options(spec, unit, width);
    var fmt = formatter(spec.format);
    var data = [x];
    var raw = spec.series.map(function (s) { return s.values; });
    if (spec.kind === "stacked") {
      var sums = [];
      var running = x.map(function () { return 0; });
      raw.forEach(function (values) {
        running = running.map(function (total, i) { return total + (values[i] || 0); });
        sums.push(running);
      });
      var bars = uPlot.paths.bars({ size: [0.8, 48], align: 0 });
      for (var i = spec.series.length - 1; i >= 0; i--) {
        (function (index) {
          var colour = css(spec.series[index].color);
          data.push(sums[index]);
          opts.series.push({
            label: spec.series[index].label,
            stroke: colour,
            fill: withAlpha(colour, 0.85),
            width: 1,
            paths: bars,
            points: { show: false },
            value: function (u, v, si, idx) {
              return idx === null || idx === undefined ? DASH : fmt(raw[index][idx]);
            }
          });
        })(i);
      }
    } else {
      spec.series.forEach(function (s) {
        var colour = css(s.color);
        data.push(s.values);
        var series = {
          label: s.label,
          stroke: colour,
          width: 2,
          spanGaps: false,
          value: function (u, v) { return fmt(v); }
        };
        if (spec.kind === "bars") {
          series.paths = uPlot.paths.bars({ size: [0.7, 48], align: 0 });
          series.fill = withAlpha(colour, 0.6);
          series.width = 1;
          series.points = { show: false };
        } else {
          series.points = { show: x.length < 60, size: 5 };
        }
        opts.series.push(series);
      });
    }
    return new uPlot(opts, data, el);
  }

  function drawAll() {
    var island = document.getElementById("chart-data");
    if (!island || typeof uPlot === "undefined") return;
    var chartData = JSON.parse(island.textContent);
    drawn.forEach(function (entry) { entry.plot.destroy(); });
    drawn = [];
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var spec = chartData.charts[el.getAttribute("data-chart")];
      if (!spec) return;
      el.textContent = "";
      drawn.push({ el: el, plot: build(el, spec, chartData.x, chartData.unit) });
    });
  }

  var pending = false;
  function resize() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      drawn.forEach(function (entry) {
        var width = Math.max(entry.el.clientWidth, 200);
        if (width !== entry.plot.width) entry.plot.setSize({ width: width, height: HEIGHT });
      });
    });
  }

  // Filter forms leave empty fields (and from/to unless the period is custom) out of
  // the URL, so a shared link says only what was chosen.
  function cleanQuery(form) {
    form.addEventListener("submit", function () {
      var custom = form.elements.period && form.elements.period.value === "custom";
      Array.prototype.forEach.call(form.elements, function (field) {
        var range = field.name === "from" || field.name === "to";
        if (field.name && (field.value === "" || (range && !custom))) field.disabled = true;
      });
      window.setTimeout(function () {
        Array.prototype.forEach.call(form.elements, function (f) { f.disabled = false; });
      }, 0);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-clean-query]").forEach(cleanQuery);
    drawAll();
    if (typeof ResizeObserver !== "undefined") {
      var observer = new ResizeObserver(resize);
      drawn.forEach(function (entry) { observer.observe(entry.el); });
    }
    window.addEventListener("resize", resize);
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", drawAll);
  });
})();

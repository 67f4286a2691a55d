// Draws every [data-chart] element with uPlot (vendored beside this file).
"use strict";
(function () {
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
  function width(el) { return Math.max(320, Math.min(900, el.clientWidth || 640)); }
  function history(el, spec) {
    // Two series on their own scales: used price (dollars) and sales rank.
    const times = Array.from(new Set(spec.used.map(p => p[0]).concat(spec.rank.map(p => p[0])))).sort((a, b) => a - b);
    const used = new Map(spec.used.map(p => [p[0], p[1] / 100]));
    const rank = new Map(spec.rank.map(p => [p[0], p[1]]));
    const data = [times, times.map(t => used.has(t) ? used.get(t) : null), times.map(t => rank.has(t) ? rank.get(t) : null)];
    return new uPlot({
      title: "Used price and sales rank", width: width(el), height: 300, spanGaps: true,
      series: [{}, { label: "used price", stroke: palette[0], scale: "$" }, { label: "sales rank", stroke: palette[1], scale: "rank" }],
      axes: [{}, { scale: "$", label: "price" }, { scale: "rank", side: 1, label: "rank", grid: { show: false } }],
    }, data, el);
  }
  function hourly(el, spec) {
    const names = Object.keys(spec.series);
    const data = [spec.x].concat(names.map(n => spec.series[n]));
    return new uPlot({
      title: spec.title, width: width(el), height: 220,
      series: [{}].concat(names.map((n, i) => ({ label: n, stroke: palette[i % palette.length] }))),
    }, data, el);
  }
  for (const el of document.querySelectorAll("[data-chart]")) {
    const spec = JSON.parse(el.dataset.chart);
    (spec.kind === "history" ? history : hourly)(el, spec);
    el.dataset.drawn = "true";
  }
})();

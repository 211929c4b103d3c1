// cafgw dashboard charts: small SVG line charts drawn with the DOM (no library, no
// CDN, nothing but this file). Colours come from dashboard.css classes (.s-sent ...).
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 300, H = 90, PAD_L = 28, PAD_B = 16, PAD_T = 6, PAD_R = 4;

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function hhmm(date) {
    return date.toISOString().slice(11, 16);
  }

  // series: {sent: [..], delivered: [..], ...}; start: ISO time; stepS: seconds per point.
  function lineChart(series, start, stepS, label) {
    const kinds = Object.keys(series);
    const points = kinds.length ? series[kinds[0]].length : 0;
    const max = Math.max(1, ...kinds.flatMap((k) => series[k]));
    const x = (i) => PAD_L + (points <= 1 ? 0 : (i * (W - PAD_L - PAD_R)) / (points - 1));
    const y = (v) => H - PAD_B - (v * (H - PAD_B - PAD_T)) / max;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
    const totals = kinds.map((k) => k + " " + series[k].reduce((a, b) => a + b, 0)).join(", ");
    root.appendChild(svg("title", {}, label + ": " + totals));
    root.appendChild(svg("line", { x1: PAD_L, y1: H - PAD_B, x2: W - PAD_R, y2: H - PAD_B, class: "axis" }));
    root.appendChild(svg("line", { x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: H - PAD_B, class: "axis" }));
    root.appendChild(svg("text", { x: PAD_L - 3, y: PAD_T + 8, class: "tick end" }, max));
    root.appendChild(svg("text", { x: PAD_L - 3, y: H - PAD_B, class: "tick end" }, 0));
    const t0 = new Date(start);
    const t1 = new Date(t0.getTime() + points * stepS * 1000);
    root.appendChild(svg("text", { x: PAD_L, y: H - 3, class: "tick" }, hhmm(t0)));
    root.appendChild(svg("text", { x: W - PAD_R, y: H - 3, class: "tick end" }, hhmm(t1) + "Z"));
    for (const kind of kinds) {
      const values = series[kind];
      const line = svg("polyline", {
        points: values.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" "),
        class: "series s-" + kind,
      });
      line.appendChild(svg("title", {}, kind + ": " + values.reduce((a, b) => a + b, 0) + " (per " + Math.round(stepS / 60) + " min, peak " + Math.max(0, ...values) + ")"));
      root.appendChild(line);
    }
    root.dataset.totals = totals;
    return root;
  }

  window.cafgwCharts = { lineChart };
})();

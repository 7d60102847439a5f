"use strict";
// SVG charts for the dashboard: a throughput chart (with a compact sparkline form) and a wait-time scatter.
// They draw into a container element and redraw in place, sized to the container, with axes and units.

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function node(name, attrs, parent) {
    const el = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  function text(parent, x, y, label, anchor) {
    const t = node("text", { x, y, "text-anchor": anchor || "start" }, parent);
    t.textContent = label;
    return t;
  }

  // The smallest "round" number (1, 2, 2.5 or 5 times a power of ten) at or above v.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v - 1e-12) return m * p;
    return 10 * p;
  }

  function fmtNumber(v) {
    if (v === 0) return "0";
    if (v >= 100) return Math.round(v).toLocaleString("en-US");
    if (v >= 10) return (Math.round(v * 10) / 10).toString();
    return (Math.round(v * 100) / 100).toString();
  }

  // Seconds in the unit that reads best for the axis maximum.
  function durationUnit(maxSeconds) {
    if (maxSeconds < 1) return { div: 0.001, unit: "ms" };
    if (maxSeconds < 120) return { div: 1, unit: "s" };
    if (maxSeconds < 7200) return { div: 60, unit: "min" };
    return { div: 3600, unit: "h" };
  }

  function svgFor(box, label) {
    const w = Math.max(box.clientWidth, 120);
    const h = Math.max(box.clientHeight, 40);
    const svg = node("svg", { class: "chart-svg", viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": label });
    return { svg, w, h };
  }

  function path(xs, ys) {
    return xs.map((x, i) => `${i ? "L" : "M"}${x.toFixed(1)},${ys[i].toFixed(1)}`).join("");
  }

  // Completed and failed jobs per second in fixed buckets. series = {bucket_seconds, completed[], failed[]}.
  function throughput(box, series, opts) {
    const compact = !!(opts && opts.compact);
    const n = series.completed.length;
    const bs = series.bucket_seconds || 5;
    const done = series.completed.map((c) => c / bs);
    const failed = series.failed.map((f) => f / bs);
    const top = niceMax(Math.max(0, ...done, ...failed));
    const totalDone = series.completed.reduce((a, b) => a + b, 0);
    const totalFailed = series.failed.reduce((a, b) => a + b, 0);
    const minutes = Math.round((n * bs) / 60);
    const { svg, w, h } = svgFor(box, `Throughput over the last ${minutes} minutes: ${totalDone} completed, ${totalFailed} failed`);
    const pad = compact ? { l: 2, r: 2, t: 12, b: 12 } : { l: 44, r: 8, t: 10, b: 22 };
    const iw = w - pad.l - pad.r;
    const ih = h - pad.t - pad.b;
    const x = (i) => pad.l + (n > 1 ? (i / (n - 1)) * iw : iw);
    const y = (v) => pad.t + ih - (v / top) * ih;

    if (compact) {
      node("line", { class: "axis", x1: pad.l, x2: w - pad.r, y1: y(0), y2: y(0) }, svg);
      text(svg, pad.l, 9, `peak ${fmtNumber(Math.max(0, ...done, ...failed))}/s`);
      text(svg, w - pad.r, 9, `last ${minutes} min`, "end");
    } else {
      for (const f of [0, 0.5, 1]) {
        node("line", { class: "grid-line", x1: pad.l, x2: w - pad.r, y1: y(top * f), y2: y(top * f) }, svg);
        text(svg, pad.l - 6, y(top * f) + 3.5, `${fmtNumber(top * f)}/s`, "end");
      }
      // Ticks every 5 minutes back from now.
      const stepBuckets = Math.round(300 / bs);
      for (let back = 0; back * stepBuckets <= n - 1; back++) {
        const i = n - 1 - back * stepBuckets;
        node("line", { class: "axis", x1: x(i), x2: x(i), y1: y(0), y2: y(0) + 4 }, svg);
        text(svg, x(i), h - 6, back === 0 ? "now" : `−${back * 5} min`, back === 0 ? "end" : "middle");
      }
      node("line", { class: "axis", x1: pad.l, x2: w - pad.r, y1: y(0), y2: y(0) }, svg);
    }
    const xs = done.map((_, i) => x(i));
    if (n > 0) {
      node("path", { class: "area-completed", d: `${path(xs, done.map(y))}L${x(n - 1)},${y(0)}L${x(0)},${y(0)}Z` }, svg);
      node("path", { class: "line-completed", d: path(xs, done.map(y)) }, svg);
      node("path", { class: "line-failed", d: path(xs, failed.map(y)) }, svg);
    }
    svg.dataset.completed = String(totalDone);
    svg.dataset.failed = String(totalFailed);
    box.replaceChildren(svg);
  }

  // How long recent jobs waited before their claim. points = [{at, wait}], now = server time in ms.
  function waits(box, points, now) {
    const { svg, w, h } = svgFor(box, `Wait before claim of the last ${points.length} completed jobs`);
    const pad = { l: 48, r: 8, t: 10, b: 22 };
    const iw = w - pad.l - pad.r;
    const ih = h - pad.t - pad.b;
    const times = points.map((p) => Date.parse(p.at));
    const oldest = times.length ? Math.min(...times) : now - 60000;
    const span = Math.max(now - oldest, 60000);
    const start = now - span;
    const top = niceMax(Math.max(0, ...points.map((p) => p.wait)));
    const { div, unit } = durationUnit(top);
    const x = (t) => pad.l + ((t - start) / span) * iw;
    const y = (v) => pad.t + ih - (v / top) * ih;
    for (const f of [0, 0.5, 1]) {
      node("line", { class: "grid-line", x1: pad.l, x2: w - pad.r, y1: y(top * f), y2: y(top * f) }, svg);
      text(svg, pad.l - 6, y(top * f) + 3.5, `${fmtNumber((top * f) / div)} ${unit}`, "end");
    }
    node("line", { class: "axis", x1: pad.l, x2: w - pad.r, y1: y(0), y2: y(0) }, svg);
    const spanMin = span / 60000;
    text(svg, pad.l, h - 6, spanMin >= 120 ? `−${Math.round(spanMin / 60)} h` : `−${Math.round(spanMin)} min`, "start");
    text(svg, w - pad.r, h - 6, "now", "end");
    text(svg, (pad.l + w - pad.r) / 2, h - 6, "claimed at", "middle");
    points.forEach((p, i) => node("circle", { class: "dot", cx: x(times[i]).toFixed(1), cy: y(p.wait).toFixed(1), r: 3 }, svg));
    svg.dataset.points = String(points.length);
    box.replaceChildren(svg);
  }

  return { throughput, waits };
})();

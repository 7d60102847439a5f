"use strict";
// SVG charts for the dashboard: a throughput chart (with a compact sparkline form) and a wait-time scatter.
// They draw into a container element and redraw in place, sized to the container, with axes and units. The full
// charts show a read-out of the values under the pointer (or under a position moved with the arrow keys once
// the chart has focus), kept in place across redraws.

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

  const pad2 = (n) => String(n).padStart(2, "0");
  function clock(ms) {
    const d = new Date(ms);
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  function fmtWait(sec) {
    const { div, unit } = durationUnit(sec);
    return `${fmtNumber(sec / div)} ${unit}`;
  }

  // The read-out: box.readout = {pick(at), count, top, bottom, width}; pick gives, for a pointer position
  // ({x}) or an item ({index}), the item's index, x, dots ([x, y, class]) and lines of text.
  function showReadout(box) {
    const svg = box.querySelector("svg");
    if (!svg) return;
    const old = svg.querySelector(".readout");
    if (old) old.remove();
    const r = box.readout;
    if (!r || !box.readoutAt || !r.count) {
      box.removeAttribute("data-reading");
      return;
    }
    const p = r.pick(box.readoutAt);
    box.readoutIndex = p.index;
    const g = node("g", { class: "readout" }, svg);
    node("line", { class: "readout-rule", x1: p.x, x2: p.x, y1: r.top, y2: r.bottom }, g);
    for (const [x, y, cls] of p.dots) node("circle", { class: `readout-dot ${cls}`, cx: x, cy: y, r: 3.5 }, g);
    const right = p.x < r.width / 2;
    const label = node("text", { class: "readout-text", x: p.x + (right ? 10 : -10), y: r.top + 12,
      "text-anchor": right ? "start" : "end" }, g);
    p.lines.forEach((line, i) => {
      const span = node("tspan", { x: p.x + (right ? 10 : -10), dy: i ? 14 : 0 }, label);
      span.textContent = line;
    });
    const b = label.getBBox();
    const back = node("rect", { class: "readout-box", x: b.x - 6, y: b.y - 4, width: b.width + 12, height: b.height + 8, rx: 5 });
    g.insertBefore(back, label);
    box.dataset.reading = p.lines.join(" · ");
  }

  function readout(box, r) {
    box.readout = r;
    if (!box.dataset.readable) {
      box.dataset.readable = "1";
      const at = (event) => {
        box.readoutAt = { x: event.clientX - box.getBoundingClientRect().left };
        showReadout(box);
      };
      box.addEventListener("pointermove", at);
      box.addEventListener("pointerdown", at);
      const off = () => {
        box.readoutAt = null;
        showReadout(box);
      };
      box.addEventListener("pointerleave", off);
      box.addEventListener("blur", off);
      box.addEventListener("keydown", (event) => {
        const count = box.readout ? box.readout.count : 0;
        if (!count) return;
        const now = box.readoutAt ? box.readoutIndex : count;
        const next = { ArrowLeft: now - 1, ArrowRight: now + 1, Home: 0, End: count - 1 }[event.key];
        if (event.key === "Escape") off();
        if (next === undefined) return;
        event.preventDefault();
        box.readoutAt = { index: Math.max(0, Math.min(count - 1, next)) };
        showReadout(box);
      });
    }
    showReadout(box);
  }

  // Completed and failed jobs per second in fixed buckets. series = {bucket_seconds, completed[], failed[]};
  // opts.compact draws a sparkline, opts.now (the server's time in ms) dates the buckets for the read-out.
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
      // Ticks every 5 minutes back from now (every 15 over more than half an hour).
      const step = n * bs > 1800 ? 900 : 300;
      const stepBuckets = Math.round(step / bs);
      for (let back = 0; back * stepBuckets <= n - 1; back++) {
        const i = n - 1 - back * stepBuckets;
        const minutes = (back * step) / 60;
        node("line", { class: "axis", x1: x(i), x2: x(i), y1: y(0), y2: y(0) + 4 }, svg);
        const label = minutes % 60 === 0 && minutes ? `−${minutes / 60} h` : `−${minutes} min`;
        text(svg, x(i), h - 6, back === 0 ? "now" : label, back === 0 ? "end" : back * stepBuckets === n - 1 ? "start" : "middle");
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
    if (compact) return;
    // The last bucket is the current one: bucket i began (n - 1 - i) buckets before it.
    const bucketMs = bs * 1000;
    const current = Math.floor(((opts && opts.now) || Date.now()) / bucketMs) * bucketMs;
    readout(box, {
      count: n, top: pad.t, bottom: y(0), width: w,
      pick: (at) => {
        const i = at.index !== undefined ? at.index
          : Math.max(0, Math.min(n - 1, Math.round(((at.x - pad.l) / iw) * (n - 1))));
        const start = current - (n - 1 - i) * bucketMs;
        return {
          index: i, x: x(i),
          dots: [[x(i), y(done[i]), "completed"], [x(i), y(failed[i]), "failed"]],
          lines: [`${clock(start)}–${clock(start + bucketMs)}`, `completed ${fmtNumber(done[i])}/s`, `failed ${fmtNumber(failed[i])}/s`],
        };
      },
    });
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
    // The read-out picks the job claimed nearest the pointer's moment; the arrow keys go through them in time.
    const order = times.map((t, i) => i).sort((a, b) => times[a] - times[b]);
    readout(box, {
      count: points.length, top: pad.t, bottom: y(0), width: w,
      pick: (at) => {
        let k = at.index;
        if (k === undefined) {
          k = 0;
          order.forEach((i, j) => { if (Math.abs(x(times[i]) - at.x) < Math.abs(x(times[order[k]]) - at.x)) k = j; });
        }
        const i = order[k];
        return {
          index: k, x: x(times[i]),
          dots: [[x(times[i]), y(points[i].wait), "wait"]],
          lines: [`claimed ${clock(times[i])}`, `waited ${fmtWait(points[i].wait)}`],
        };
      },
    });
  }

  return { throughput, waits };
})();

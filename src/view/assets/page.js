// The live page and the HTML report: one render of one state document (see src/view/mod.rs).
// Live, the state is fetched from /state every second; in a report it is embedded in the page.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n == null ? "—" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 }));
const charts = {};
let previous = null;
// The charts by element id, for whoever checks what they draw (a test reads their scales).
window.charts = charts;
// What each update showed, for whoever watches the page (a test reads it).
window.seen = [];

const COLORS = {
  "2xx": "#2e9d4f", "3xx": "#3b7dd8", "4xx": "#e0a020", "5xx": "#d7343a", "1xx": "#8a63c9",
};
const ERROR_COLORS = ["#7a1f3d", "#b5446e", "#ff7f50", "#9c6b30", "#5d4037", "#795548", "#607d8b"];

function yAxisWidth(u, values) {
  const longest = (values || []).reduce((n, v) => Math.max(n, String(v).length), 0);
  return Math.max(50, 8 * longest + 20);
}

function chart(id, series, data, stacked) {
  const el = $(id);
  if (!charts[id]) {
    const opts = {
      width: Math.max(320, el.clientWidth || 560),
      height: 220,
      // Every y axis from zero: a rate or a latency drawn from its minimum exaggerates a dip.
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      // The y axis as wide as its widest label: uPlot's fixed 50 px cut "100,000" to "0,000".
      axes: [{ label: "s since start" }, { size: yAxisWidth }],
      series: [{ label: "s" }, ...series],
      legend: { live: false },
    };
    if (stacked) {
      opts.bands = series.slice(1).map((_, i) => ({ series: [i + 2, i + 1] }));
    }
    charts[id] = new uPlot(opts, data, el);
  } else if (charts[id].series.length !== series.length + 1) {
    charts[id].destroy();
    delete charts[id];
    chart(id, series, data, stacked);
  } else {
    charts[id].setData(data);
  }
}

function line(label, stroke, fill) {
  return { label, stroke, fill, width: 1.5, spanGaps: false };
}

// The timeline holds whole buckets only (the one still filling would be drawn as a cliff); the
// charts are drawn, empty, before the first second is whole.
function renderCharts(state) {
  const tl = state.timeline || { bucket_s: 1, buckets: [] };
  const w = tl.bucket_s;
  const b = tl.buckets;
  const x = b.map((k) => k.t);
  $("chart-note").hidden = b.length > 0;
  chart("chart-rate", [line("rows/s", "#3b7dd8", "rgba(59,125,216,.15)"), line("requests/s", "#8a63c9")],
    [x, b.map((k) => k.rows / w), b.map((k) => (k.requests ?? k.rows) / w)]);
  chart("chart-latency", [
    line("p50", "#2e9d4f"), line("p90", "#e0a020"), line("p99", "#d7343a"),
  ], [x, b.map((k) => k.latency_ms.p50), b.map((k) => k.latency_ms.p90), b.map((k) => k.latency_ms.p99)]);
  const kinds = [...new Set(b.flatMap((k) => Object.keys(k.errors)))].sort();
  const parts = [
    ...["2xx", "3xx", "4xx", "5xx", "1xx"].map((c) => ({ label: c, color: COLORS[c], of: (k) => k.status[c] })),
    ...kinds.map((e, i) => ({ label: e, color: ERROR_COLORS[i % ERROR_COLORS.length], of: (k) => k.errors[e] || 0 })),
  ];
  const sums = b.map(() => 0);
  const stacked = parts.map((p) => b.map((k, i) => (sums[i] += p.of(k) / w)));
  chart("chart-outcomes", parts.map((p) => line(p.label, p.color, p.color + "55")), [x, ...stacked], true);
  chart("chart-retries", [line("retries/s", "#b5446e"), line("throttled s/s", "#607d8b")],
    [x, b.map((k) => k.retries / w), b.map((k) => (k.throttled_s || 0) / w)]);
}

function renderMap(state) {
  const map = state.id_map;
  if (!map) return;
  const cells = map.cells;
  const side = Math.ceil(Math.sqrt(cells.length));
  const canvas = $("map");
  canvas.width = side;
  canvas.height = Math.ceil(cells.length / side);
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(canvas.width, canvas.height);
  let ok = 0, failed = 0, pending = 0;
  cells.forEach(([o, f, p], i) => {
    ok += o; failed += f; pending += p;
    const n = o + f + p || 1;
    // Grey for pending, green for done, red for failed, mixed by share.
    const mix = (a, bb, c) => Math.round((o * a + f * bb + p * c) / n);
    img.data.set([mix(46, 215, 195), mix(157, 52, 201), mix(79, 58, 208), 255], i * 4);
  });
  ctx.putImageData(img, 0, 0);
  $("map-ok").textContent = fmt(ok);
  $("map-failed").textContent = fmt(failed);
  $("map-pending").textContent = fmt(pending);
  $("map-note").textContent = `ids ${map.start}..${map.end}: ${cells.length} cells of ${map.per_cell}, row by row from the top left`;
}

function table(id, head, rows) {
  $(id).innerHTML = "<tr>" + head.map((h) => `<th>${h}</th>`).join("") + "</tr>" +
    rows.map((r) => "<tr>" + r.map((c) => `<td>${c}</td>`).join("") + "</tr>").join("");
}

// Host names come from key files and servers: shown as text, never as markup.
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// The hosts that were slowest, most throttled, failing most (top 10 each; empty lists left out),
// of a run of many hosts; the section stays hidden for one host.
function renderHosts(hosts) {
  $("hosts-section").hidden = !hosts;
  if (!hosts) return;
  $("hosts-touched").textContent = fmt(hosts.touched);
  const rows = [];
  for (const [label, list] of [["slowest", hosts.slowest], ["most throttled", hosts.throttled], ["failing most", hosts.failing]]) {
    list.forEach((h, i) => rows.push([i === 0 ? label : "", esc(h.host), fmt(h.mean_ms), fmt(h.requests), fmt(h.throttled), fmt(h.errors)]));
  }
  table("hosts", ["", "host", "mean ms", "requests", "429/503", "errors"], rows);
}

function render(state) {
  const p = state.progress;
  const t = state.totals;
  const dt = previous ? state.elapsed_s - previous.elapsed_s : 0;
  const rate = dt > 0 ? (p.done - previous.progress.done) / dt : p.done / Math.max(state.elapsed_s, 1e-9);
  const left = p.items - p.done;
  // "finished" only for a run with nothing left: a Ctrl-C or a dead worker left items to resume.
  $("mode").textContent = state.running ? "running" : left === 0 ? "finished" : "stopped, items left (--resume)";
  $("done").textContent = fmt(p.done);
  $("items").textContent = fmt(p.items);
  $("percent").textContent = fmt(p.items ? (100 * p.done) / p.items : 100);
  $("rows").textContent = fmt(t.rows);
  $("rate").textContent = fmt(rate);
  // A run that ended with items left (Ctrl-C, a dead worker) is not "done": it has no ETA.
  $("eta").textContent = left === 0 ? "done" : !state.running ? "—" : p.done > 0 && rate > 0 ? `${fmt(left / rate)} s` : "—";
  $("elapsed").textContent = fmt(state.elapsed_s);
  const status = Object.entries(t.status).map(([k, v]) => [`status ${k}`, fmt(v)]);
  const errors = Object.entries(t.errors).map(([k, v]) => [`error ${k}`, fmt(v)]);
  table("totals", ["", ""], [
    ["rows", fmt(t.rows)], ["requests", fmt(t.requests)], ["retries", fmt(t.retries)],
    ...status, ...errors,
    ["throttled", `${fmt(t.throttled_s)} s`],
    ...(t.paced_by_ratelimit_s > 0 ? [["paced by RateLimit", `${fmt(t.paced_by_ratelimit_s)} s`]] : []),
    ["bytes decoded", fmt(t.bytes)], ["bytes on the wire", fmt(t.bytes_wire)],
  ]);
  table("workers", ["shard", "rows", "in flight", "rows/s", "driver"], state.workers.map((w) => {
    const before = previous && previous.workers.find((v) => v.shard === w.shard);
    const r = before && dt > 0 ? (w.rows - before.rows) / dt : w.rows / Math.max(state.elapsed_s, 1e-9);
    return [w.shard, fmt(w.rows), fmt(w.in_flight), fmt(r), w.driver || "—"];
  }));
  const proxies = Object.entries(state.proxies || {});
  $("proxies-section").hidden = proxies.length < 2;
  table("proxies", ["proxy", "rows", "failures", "benched s"],
    proxies.map(([name, v]) => [name, fmt(v.rows), fmt(v.failures), fmt(v.bench_ms / 1000)]));
  renderHosts(state.hosts);
  renderCharts(state);
  renderMap(state);
  window.seen.push({ done: p.done, rows: t.rows, status: t.status, errors: t.errors, at: Date.now() });
  previous = state;
}

// `tune --report`: the sweep, step by step, in the same style.
function renderTune(state) {
  $("mode").textContent = "tune";
  const steps = state.steps;
  const knee = state.knee;
  $("headline").innerHTML = `<span class="figure">knee: concurrency <b id="knee">${knee ?? "none"}</b></span>` +
    `<span class="figure">p99 budget <b>${fmt(state.p99_budget_ms)}</b> ms</span>` +
    `<span class="figure"><b id="steps">${steps.length}</b> steps</span>`;
  document.querySelector("main").innerHTML =
    '<section class="wide"><h2>Requests per second by step</h2><div id="chart-tune-rate" class="chart"></div></section>' +
    '<section class="wide"><h2>Latency (ms) by step: p50, p99, and the budget</h2><div id="chart-tune-latency" class="chart"></div></section>' +
    '<section><h2>Steps</h2><table id="tune-steps"></table></section>';
  const x = steps.map((_, i) => i);
  const axes = [{ label: "concurrency", values: (u, ticks) => ticks.map((t) => (steps[t] ? steps[t].concurrency : "")) }, {}];
  const draw = (id, series, data) => {
    const opts = { width: Math.max(320, $(id).clientWidth || 560), height: 240, scales: { x: { time: false } },
      axes, series: [{ label: "step" }, ...series], legend: { live: false } };
    new uPlot(opts, data, $(id));
  };
  draw("chart-tune-rate", [line("req/s", "#3b7dd8", "rgba(59,125,216,.15)")], [x, steps.map((s) => s.req_per_s)]);
  draw("chart-tune-latency", [line("p50", "#2e9d4f"), line("p99", "#d7343a"), line("budget", "#999")],
    [x, steps.map((s) => s.p50_ms), steps.map((s) => s.p99_ms), steps.map(() => state.p99_budget_ms)]);
  table("tune-steps", ["concurrency", "req/s", "p50 ms", "p99 ms", "errors", ""], steps.map((s) => [
    s.concurrency, fmt(s.req_per_s), fmt(s.p50_ms), fmt(s.p99_ms), fmt(s.errors), s.concurrency === knee ? "← knee" : "",
  ]));
}

async function poll() {
  try {
    const response = await fetch("/state", { cache: "no-store" });
    const state = response.ok ? await response.json() : null;
    if (state && state.progress) render(state);
  } catch (e) {
    $("mode").textContent = "disconnected (the run ended?)";
  }
}

// Live, the first state may not be made yet (the page asked in the run's first second).
const first = JSON.parse($("state").textContent);
if (first && first.kind === "tune") renderTune(first);
else if (first && first.progress) render(first);
if (LIVE) setInterval(poll, 1000);

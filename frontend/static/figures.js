// Plotly with two more buttons on every figure: SVG (Plotly's client-side export) and
// the figure's data as CSV. PNG is Plotly's own camera button.
import { el } from "./api.js";
import { translucent } from "./palette.js";

// A member's text (a run name, a metric key, a config key or value, a tag) as Plotly text:
// Plotly reads a subset of HTML in trace names, titles, hover text and tick labels (<a href>
// links, <b>, <br>, <span style>), so its markup characters go in as entities, which Plotly
// shows as the characters themselves. Our own labels (with their <br>) go in as they are.
export const plain = (text) => String(text ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function csvOf(div) {
  const par = (div.data || []).find((t) => t.type === "parcoords");
  if (par) {  // parallel coordinates: one row per line, one column per axis (text as text)
    const dims = par.dimensions;
    const cell = (d, v) => (d.ticktext ? d.ticktext[v] : v);
    return toCsv([dims.map((d) => d.label),
      ...(dims[0] ? dims[0].values.map((_, i) => dims.map((d) => cell(d, d.values[i]))) : [])]);
  }
  const rows = [["trace", "x", "y", "z_or_error"]];
  for (const t of div.data || []) {
    const name = t.name || t.type || "";
    if (t.z) {  // heatmap: one row per cell
      t.z.forEach((row, i) => row.forEach((v, j) =>
        rows.push([name, t.x ? t.x[j] : j, t.y ? t.y[i] : i, v])));
    } else {
      const err = t.error_y && t.error_y.array;
      (t.x || []).forEach((x, i) => rows.push([name, x, t.y[i], err ? err[i] : ""]));
    }
  }
  return toCsv(rows);
}

// Text a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading ',
// as server/csv_cells.py writes the runs' CSV; numbers, and text that is just a number, stay
const FORMULA = /^'*[=+\-@\t\r]/;
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
// (a member's text is in the figure as plain() wrote it: the CSV has the text itself)
const unplain = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
export const csvCell = (v) => {
  if (typeof v !== "string") return String(v ?? "");
  const text = unplain(v);
  return FORMULA.test(text) && !NUMBER.test(text) ? `'${text}` : text;
};

function toCsv(rows) {
  return rows.map((r) => r.map((v) => {
    const s = csvCell(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }).join(",")).join("\n") + "\n";
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  el("a", { href: url, download: name }).click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const slug = (s) => (s || "figure").replace(/<[^>]*>/g, " ").replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").toLowerCase();

// plotly.js (1.5 MB) is loaded once, on first use, after the page has sent its requests:
// parsing it takes the main thread for about half a second, which the requests overlap.
let loading = null;
export function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = el("script", { src: "/static/vendor/plotly.min.js" });
      performance.mark("plotly:requested");
      script.onload = () => { performance.mark("plotly:ready"); resolve(window.Plotly); };
      script.onerror = () => reject(new Error("plotly.js did not load"));
      document.head.append(script);
    });
  }
  return loading;
}

// Figures are drawn one at a time with a frame between them, so the browser paints each
// as it is done instead of all of them at the end (a hidden tab, without frames, goes on
// after 50 ms).
let queue = Promise.resolve();
export function plot(div, data, layout, config = {}) {
  const job = queue.then(() => draw(div, data, layout, config));
  queue = job.then(turn, turn);
  return job;
}
const turn = () => new Promise((resolve) => {
  requestAnimationFrame(() => setTimeout(resolve, 0));  // after the frame is painted
  setTimeout(resolve, 50);
});

// The one figure style:
// - a short title, its detail in a subtitle (a title written "text<br><span>detail</span>"
//   is split so), wrapped onto more lines rather than cut at a narrow figure's edges;
// - a horizontal legend at the foot of the figure, below the x-axis title (not over it);
// - axes that make room for their labels, decade ticks on log axes, four significant
//   digits on hover, and a flat series on a range around its value (not plotly's ±1);
// - the toolbar on hover only, upright at the right edge, away from the title;
// - and, from the helpers below and palette.js, one colour per condition on every page,
//   one way to draw a mean ± SEM band, a legend entry and an axis title.
function styled(div, layout, data = []) {
  const out = { margin: { t: 46, r: 34, b: 45, l: 55 },
    legend: { orientation: "h", yref: "container", y: 0, yanchor: "bottom" },
    modebar: { orientation: "v", bgcolor: "rgba(255,255,255,0.85)" }, ...layout };
  const axes = ["xaxis", "yaxis", ...Object.keys(out).filter((k) => /^[xy]axis\d+$/.test(k))];
  for (const key of axes) {
    // no dark zero line across an x axis that starts at 0 (σ, step): it reads as data
    const axis = { automargin: true, hoverformat: ".4~g", ...(key.startsWith("x") ? { zeroline: false } : {}),
      ...(out[key] || {}) };
    if (axis.type === "log" && axis.dtick === undefined) {
      Object.assign(axis, { dtick: 1, minor: { ticks: "outside", dtick: "D1", showgrid: true } });
    }
    out[key] = axis;
  }
  const bars = data.some((t) => t.type === "bar");
  for (const [key, values] of [["yaxis", data.map((t) => t.y)], ["xaxis", data.map((t) => t.x)]]) {
    const range = flatRange(values, bars && key === "yaxis");
    if (range && out[key].range === undefined && out[key].type !== "category") out[key].range = range;
  }
  if (out.title && out.title.text) {
    out.title = fitted(div, out.title);
    // room for the title's lines at the top, made here: plotly's own automargin moves a
    // wrapped title's lines up by a line each, past the figure's top edge
    out.margin = { ...out.margin, t: Math.max(out.margin.t ?? 46, titleHeight(div, out.title)) };
  }
  for (const t of data) {
    if (t.type === "heatmap" && t.showscale !== false) t.colorbar = besideToolbar(t.colorbar);
    if (t.type === "parcoords" && t.line && t.line.showscale) t.line.colorbar = besideToolbar(t.line.colorbar);
  }
  return out;
}

// A heatmap's colour bar ends left of the toolbar's column at the figure's right edge, so
// the toolbar, shown on hover, never covers the bar's top labels (its scale)
const TOOLBAR = 36;
const besideToolbar = (bar = {}) => ({ thickness: 14, ...bar, xref: "container", x: 1, xanchor: "right",
  xpad: TOOLBAR });

// The px from the figure's top to below its title and subtitle (plotly's line spacing 1.3,
// the subtitle 1.5 of its font below the title), with a gap above the plot
function titleHeight(div, title) {
  const lines = (text) => (text ? text.split("<br>").length : 0);
  const size = title.font.size;
  const sub = title.subtitle ? 11 * (1.5 + 1.3 * lines(title.subtitle.text)) : 0;
  return Math.ceil(0.015 * (div.clientHeight || 450) + 1.3 * size * lines(title.text) + sub + 14);
}

// [lo, hi] around a series whose numbers are all one value (a constant lr, one point);
// bars keep 0 on their axis
function flatRange(arrays, fromZero = false) {
  const nums = arrays.filter(Array.isArray).flat().filter((v) => typeof v === "number" && Number.isFinite(v));
  if (!nums.length || nums.some((v) => v !== nums[0])) return null;
  const pad = Math.abs(nums[0]) * 0.1 || 0.5;
  const range = [nums[0] - pad, nums[0] + pad];
  return fromZero ? [Math.min(0, range[0]), Math.max(0, range[1])] : range;
}

function fitted(div, title) {
  let text = title.text;
  let subtitle = title.subtitle && title.subtitle.text;
  const br = text.indexOf("<br>");
  if (br >= 0 && !subtitle) {  // the older "title<br><span>detail</span>" form
    subtitle = text.slice(br + 4).replace(/<[^>]*>/g, "");
    text = text.slice(0, br);
  }
  const size = (title.font && title.font.size) || 16;
  const lines = wrap(text, perLine(div, size));
  const subLines = subtitle ? wrap(subtitle, perLine(div, 11)) : [];
  const out = { ...title, text: lines.join("<br>"), font: { size, ...(title.font || {}) },
    automargin: false, yref: "container", y: 0.985, yanchor: "top" };
  // plotly moves the first line of a title of several down by 0.7 em only when it has one
  // (a tspan's own dy replaces the text's): a pad does it for all, inside the figure
  if (lines.length > 1) out.pad = { ...(title.pad || {}), t: Math.round(0.7 * size) };
  if (subLines.length) out.subtitle = { text: subLines.join("<br>"), font: { size: 11, color: "#5b6475" } };
  else delete out.subtitle;
  return out;
}

const perLine = (div, size) => Math.max(20, Math.floor(((div.clientWidth || 600) - 60) / (0.56 * size)));

function wrap(text, width) {
  const lines = [""];
  for (const word of text.split(" ")) {
    const line = lines[lines.length - 1];
    if (line && line.length + 1 + word.length > width) lines.push(word);
    else lines[lines.length - 1] = line ? `${line} ${word}` : word;
  }
  return lines;
}

// the SVG export's own icon (a page with a folded corner), beside PNG's camera and
// CSV's disk: no two buttons look alike
const SVG_ICON = { width: 16, height: 16,
  path: "M3 1h7l4 4v10H3z M10 1v4h4 M5 8h6 M5 10.5h6 M5 13h4" };

async function draw(div, data, layout, config) {
  const Plotly = await plotly();
  const title = ((layout.title && layout.title.text) || div.dataset.title || "figure").split("<br>")[0];
  const t0 = performance.now();
  const drawn = await Plotly.react(div, data, styled(div, layout, data), {
    responsive: true, displaylogo: false, displayModeBar: "hover",
    toImageButtonOptions: { filename: slug(title), scale: 2 },
    modeBarButtonsToRemove: ["select2d", "lasso2d"],
    modeBarButtonsToAdd: [
      { name: "Download SVG", icon: SVG_ICON,
        click: (gd) => Plotly.downloadImage(gd, { format: "svg", filename: slug(title) }) },
      { name: "Download data as CSV", icon: Plotly.Icons.disk,
        click: (gd) => download(`${slug(title)}.csv`, csvOf(gd), "text/csv") },
    ],
    ...config,
  });
  keyboardModebar(div);
  // a figure follows its grid cell when figures are added or removed beside it (plotly's
  // own `responsive` only follows the window)
  if (!div.resizer) {
    let pending = false;
    div.resizer = new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; if (div.isConnected) Plotly.Plots.resize(div); });
    });
    div.resizer.observe(div);
  }
  // the page's first drawn figure, for bench/dashboard.py's breakdown
  if (!performance.getEntriesByName("plot:first").length) {
    performance.measure("plot:draw", { start: t0 });
    performance.mark("plot:first");
  }
  return drawn;
}

// Plotly's modebar buttons (PNG, SVG, CSV, zoom…) are links without href: reachable by
// mouse only. Make each a focusable button that Enter or Space presses.
function keyboardModebar(div) {
  for (const button of div.querySelectorAll(".modebar-btn")) {
    if (button.tabIndex === 0) continue;
    button.tabIndex = 0;
    button.setAttribute("role", "button");
    button.setAttribute("aria-label", button.dataset.title || "figure tool");
    button.addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter" && ev.key !== " ") return;
      ev.preventDefault();
      button.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    });
  }
}

// The pieces every page's figures are built from, so a band, a legend entry or an axis
// looks the same wherever it is drawn.

// A mean as a line and its ± SEM as a shaded band of the line's colour around it (one
// closed polygon, outside the legend and the hover): one legend entry hides or shows both.
// `extra` goes on the line (customdata, text, hovertemplate, mode…).
export function band(x, mean, sem, { name, color, dash = "solid", ...extra }) {
  const upper = mean.map((m, i) => m + sem[i]);
  const lower = mean.map((m, i) => m - sem[i]);
  return [
    { x: [...x, ...[...x].reverse()], y: [...upper, ...lower.reverse()], type: "scatter",
      mode: "lines", fill: "toself", fillcolor: translucent(color), line: { width: 0, color },
      hoverinfo: "skip", showlegend: false, legendgroup: name, name: `${name} ± SEM` },
    { x, y: mean, name, legendgroup: name, type: "scatter",
      mode: x.length < 60 ? "lines+markers" : "lines", line: { color, dash }, ...extra },
  ];
}

// A mean and its SEM as text, "0.51 ± 0.02"; of one value (n = 1) there is no SEM: the
// value alone, marked "(n = 1)". `digits` formats a number (toFixed-like).
export function meanSem(mean, sem, n, digits) {
  if (mean === null || mean === undefined) return "–";
  return n === 1 || sem === null || sem === undefined ? `${digits(mean)} (n = 1)` : `${digits(mean)} ± ${digits(sem)}`;
}

// One legend entry per key however many traces (subplots, α points) carry it:
// `const entry = legendOnce(); {...trace, ...entry(condition)}`
export function legendOnce() {
  const shown = new Set();
  return (key) => {
    const first = !shown.has(key);
    shown.add(key);
    return { legendgroup: key, showlegend: first };
  };
}

// An axis with its title (text as Plotly text: a member's key goes through plain() first);
// styled() adds the margins, hover digits and log ticks.
export const axis = (title, extra = {}) => ({ title: { text: title }, ...extra });
// values on a log axis: one at or below 0 is left out (null), where a log axis has no place
export const positive = (ys) => ys.map((y) => (y > 0 ? y : null));

export function chartDiv(title, id) {
  return el("div", { class: "chart", "data-title": title, id: id || `chart-${slug(title)}`,
    role: "img", "aria-label": title });
}

// The figure `id` in `host`: the one drawn on an earlier poll (a re-plot keeps its zoom),
// or a new one appended to `host`.
export function chartIn(host, id, title) {
  const div = document.getElementById(id);
  if (div) return div;
  const made = chartDiv(title, id);
  host.append(made);
  return made;
}

export { csvOf };

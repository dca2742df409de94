// Plotly with two more buttons on every figure: SVG (Plotly's client-side export) and
// the figure's data as CSV. PNG is Plotly's own camera button.
import { el } from "./api.js";

function csvOf(div) {
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
  return rows.map((r) => r.map((v) => {
    const s = String(v ?? "");
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
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

// The one figure style: a horizontal legend at the foot of the figure, below the x-axis
// title (not over it), axes that make room for their labels, and a title that wraps
// onto more lines rather than run past a narrow figure's edges.
function styled(div, layout) {
  const out = { margin: { t: 40, r: 10, b: 45, l: 55 },
    legend: { orientation: "h", yref: "container", y: 0, yanchor: "bottom" }, ...layout };
  for (const key of ["xaxis", "yaxis", ...Object.keys(out).filter((k) => /^[xy]axis\d+$/.test(k))]) {
    out[key] = { automargin: true, ...(out[key] || {}) };
  }
  if (out.title && out.title.text && !out.title.text.includes("<br>")) {
    const lines = wrap(out.title.text, perLine(div, (out.title.font && out.title.font.size) || 17));
    // more than one line: the title pushes the plot down instead of running into it
    if (lines.length > 1) out.title = { ...out.title, text: lines.join("<br>"), automargin: true, yref: "paper" };
  }
  return out;
}

const perLine = (div, size) => Math.max(24, Math.floor(((div.clientWidth || 600) - 40) / (0.55 * size)));

function wrap(text, width) {
  const lines = [""];
  for (const word of text.split(" ")) {
    const line = lines[lines.length - 1];
    if (line && line.length + 1 + word.length > width) lines.push(word);
    else lines[lines.length - 1] = line ? `${line} ${word}` : word;
  }
  return lines;
}

async function draw(div, data, layout, config) {
  const Plotly = await plotly();
  const title = (layout.title && layout.title.text) || div.dataset.title || "figure";
  const t0 = performance.now();
  const drawn = await Plotly.react(div, data, styled(div, layout), {
    responsive: true, displaylogo: false,
    toImageButtonOptions: { filename: slug(title) },
    modeBarButtonsToAdd: [
      { name: "Download SVG", icon: Plotly.Icons.camera,
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

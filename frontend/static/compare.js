// Compare runs: pick runs and a metric, see them overlaid. /compare?runs=3,5,8&key=loss
import { el, getJSON, withLogin } from "./api.js";
import { chartDiv, plot, plotly } from "./figures.js";

// config.a.b → value, every leaf of a run's config (lists as JSON)
function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = JSON.stringify(v);
  }
  return out;
}

// The config fields that differ between the runs (only those), each value that differs
// from the first run's highlighted; kind and name first
function drawDiff(host, ids, runs) {
  const shown = runs.map((r, i) => [ids[i], r]).filter(([, r]) => r);
  if (shown.length < 2) { host.replaceChildren(); return; }
  const flat = shown.map(([, r]) => ({ kind: JSON.stringify(r.kind), ...flatten(r.config) }));
  const keys = [...new Set(flat.flatMap(Object.keys))].sort((a, b) => (a !== "kind") - (b !== "kind") || a.localeCompare(b));
  const differ = keys.filter((k) => new Set(flat.map((f) => f[k] ?? "–")).size > 1);
  const text = (v) => (v === undefined ? "–" : v.replace(/^"(.*)"$/, "$1"));
  host.replaceChildren(
    el("h2", {}, "Config: the fields that differ"),
    el("p", { class: "meta" }, `${differ.length} of ${keys.length} fields differ; the rest are the same in every run.`),
    el("table", { class: "scores", id: "diff-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "field"),
        ...shown.map(([id, r]) => el("th", {}, el("a", { href: `/runs/${id}` }, `#${id} ${r.name || ""}`))))),
      el("tbody", {}, ...differ.map((k) => el("tr", {}, el("th", {}, k),
        ...flat.map((f) => el("td", { class: f[k] !== flat[0][k] ? "differs" : "" }, text(f[k]))))))));
}

withLogin(async () => {
  const page = document.getElementById("page");
  page.hidden = false;
  const params = new URLSearchParams(location.search);
  const runsInput = el("input", { id: "compare-runs", size: 30, value: params.get("runs") || "",
    placeholder: "3, 5, 8" });
  const keyInput = el("input", { id: "compare-key", size: 20, value: params.get("key") || "loss",
    list: "metric-keys" });
  const keys = el("datalist", { id: "metric-keys" });
  const form = el("form", { id: "compare-form", class: "filters" },
    el("label", { for: "compare-runs" }, "runs "), runsInput,
    el("label", { for: "compare-key" }, "metric "), keyInput, keys, el("button", {}, "Overlay"));
  const div = chartDiv("Overlay", "compare-chart");
  const status = el("p", { class: "meta", id: "compare-status" });
  const diff = el("div", { id: "config-diff" });
  page.replaceChildren(el("h1", {}, "Compare runs"), form, status, div, diff);
  const draw = async () => {
    const ids = runsInput.value.split(/[\s,]+/).map(Number).filter((n) => n > 0);
    const key = keyInput.value.trim();
    history.replaceState(null, "", `/compare?runs=${ids.join(",")}&key=${encodeURIComponent(key)}`);
    if (!ids.length || !key) return;
    // every request at once: the runs, their metric keys and the picked series
    const [runs, keyLists, series] = await Promise.all([
      Promise.all(ids.map((id) => getJSON(`/api/runs/${id}`).catch(() => null))),
      Promise.all(ids.map((id) => getJSON(`/api/runs/${id}/metrics`).catch(() => []))),
      Promise.all(ids.map((id) => getJSON(
        `/api/runs/${id}/metrics/${encodeURIComponent(key)}?max_points=2000`).catch(() => null))),
    ]);
    const known = new Set(keyLists.flat().map((k) => k.key));
    keys.replaceChildren(...[...known].sort().map((k) => el("option", { value: k })));
    const traces = series.map((s, i) => s && runs[i] && {
      x: s.steps, y: s.values, type: "scatter", mode: "lines",
      name: `#${ids[i]} ${runs[i].name || runs[i].kind}` }).filter(Boolean);
    status.textContent = `${traces.length} of ${ids.length} runs have “${key}”`;
    drawDiff(diff, ids, runs);
    div.dataset.title = `${key}: runs ${ids.join(", ")}`;
    plot(div, traces, { title: { text: div.dataset.title }, xaxis: { title: { text: "step" } } });
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); draw(); });
  const first = draw();
  plotly();  // loads while the first requests are answered
  await first;
});

// Compare runs: pick runs (ids, a query, or both) and a metric; see them overlaid — each
// run, or each group's mean ± SEM — with their config diff, parallel coordinates of config
// fields against final metrics, and a scatter of any two fields.
// /compare?runs=3,5,8&q=…&key=loss&group=config.target&dims=…&x=…&y=…
import { AuthError, el, getJSON, withLogin } from "./api.js";
import { axis, band, chartDiv, plain, plot, plotly } from "./figures.js";
import { conditionColour, dashOf, seriesColours, symbolOf } from "./palette.js";

const MAX_RUNS = 500;       // the runs one comparison reads (one page of GET /api/runs)
const MAX_OVERLAID = 40;    // runs drawn one by one (more: group them)
const MAX_DIFFED = 20;      // columns of the config diff

// config.a.b → value, every leaf of a run's config (lists as JSON)
function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = JSON.stringify(v);
  }
  return out;
}

const fields = (text) => text.split(",").map((f) => f.trim()).filter(Boolean);
const label = (v) => (v === null || v === undefined ? "–" : typeof v === "string" ? v : JSON.stringify(v));

// The config fields that differ between the runs (only those), each value that differs
// from the first run's highlighted; kind and name first
function differing(runs) {
  const flat = runs.map((r) => ({ kind: JSON.stringify(r.kind), ...flatten(r.config) }));
  const keys = [...new Set(flat.flatMap(Object.keys))].sort((a, b) => (a !== "kind") - (b !== "kind") || a.localeCompare(b));
  return { flat, keys, differ: keys.filter((k) => new Set(flat.map((f) => f[k] ?? "–")).size > 1) };
}

function drawDiff(host, runs) {
  if (runs.length < 2) { host.replaceChildren(); return; }
  const shown = runs.slice(0, MAX_DIFFED);
  const { flat, keys, differ } = differing(shown);
  const text = (v) => (v === undefined ? "–" : v.replace(/^"(.*)"$/, "$1"));
  host.replaceChildren(
    el("h2", {}, "Config: the fields that differ"),
    el("p", { class: "meta" }, `${differ.length} of ${keys.length} fields differ; the rest are the same in every run.`
      + (runs.length > shown.length ? ` The first ${shown.length} of ${runs.length} runs.` : "")),
    el("div", { class: "scroll-x" }, el("table", { class: "scores", id: "diff-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "field"),
        ...shown.map((r) => el("th", {}, el("a", { href: `/runs/${r.id}`, class: "run-name", title: `#${r.id} ${r.name || ""}` },
          `#${r.id} ${r.name || ""}`))))),
      el("tbody", {}, ...differ.map((k) => el("tr", {}, el("th", {}, k),
        ...flat.map((f) => el("td", { class: f[k] !== flat[0][k] ? "differs" : "" }, text(f[k])))))))));
}

// A group's mean as a line and its SEM as a band around it, in the group's style
const groupBand = (row, name, style) => band(row.steps, row.mean, row.sem, {
  name: plain(name), color: style.color, dash: style.dash, mode: "lines", customdata: row.n_at,
  hovertemplate: "%{fullData.name}<br>step %{x}: %{y:.4g} (n=%{customdata})<extra></extra>" });

const groupName = (group) => Object.entries(group).map(([k, v]) => `${k.replace(/^config\./, "")}=${label(v)}`).join(", ");

// Each group's colour, dash and marker symbol, the same in the overlay and the scatter.
// Grouped by config.target, a group is a condition: its colour is the condition's on every
// page (palette.js), and its other fields (α…) take one dash or symbol each, in order,
// smallest first, as on a study's figures. Other groups take Plotly's colours in turn.
const CONDITION = "config.target";
const order = (a, b) => (typeof a === "number" && typeof b === "number" ? a - b
  : label(a).localeCompare(label(b)));
function groupStyles(groups) {
  const next = seriesColours();
  const rest = (g) => Object.entries(g).filter(([k]) => k !== CONDITION).map(([, v]) => v);
  const variants = new Map();  // condition → its groups' other values, smallest first
  for (const g of groups.filter((x) => CONDITION in x)) {
    const c = label(g[CONDITION]);
    if (!variants.has(c)) variants.set(c, []);
    const vs = variants.get(c);
    if (!vs.some((v) => JSON.stringify(v) === JSON.stringify(rest(g)))) vs.push(rest(g));
  }
  for (const vs of variants.values()) vs.sort((a, b) => a.map((v, i) => order(v, b[i])).find((d) => d) || 0);
  const styles = new Map();
  for (const g of groups) {
    const name = groupName(g);
    if (styles.has(name)) continue;
    if (!(CONDITION in g)) { styles.set(name, { color: next(name), dash: "solid", symbol: "circle" }); continue; }
    const c = label(g[CONDITION]);
    const k = variants.get(c).findIndex((v) => JSON.stringify(v) === JSON.stringify(rest(g)));
    styles.set(name, { color: conditionColour(c), dash: dashOf(k), symbol: symbolOf(k) });
  }
  return (name) => styles.get(name) || { color: next(name), dash: "solid", symbol: "circle" };
}

// Parallel coordinates: one line per run through each chosen field; text fields become
// categorical axes; the last field colours the lines. A config field a run has as null
// (a None run's target_run) is the category "null" on its axis, as the config diff shows
// it; a run without a metric (or without a config field any run sets) is left out.
const NO_VALUE = "null";
function parcoordsTrace(runs, values, dims) {
  const valueOf = (r, d) => {
    const v = (values[r.id] || {})[d];
    return v == null && d.startsWith("config.") && runs.some((o) => (values[o.id] || {})[d] != null) ? NO_VALUE : v;
  };
  const have = runs.filter((r) => dims.every((d) => valueOf(r, d) != null));
  const dimensions = dims.map((d) => {
    const col = have.map((r) => valueOf(r, d));
    if (col.every((v) => typeof v === "number")) return { label: plain(d), values: col };
    const cats = [...new Set(col.map(label))].sort();
    return { label: plain(d), values: col.map((v) => cats.indexOf(label(v))), tickvals: cats.map((_, i) => i),
      ticktext: cats, range: [-0.5, cats.length - 0.5] };  // tick labels: text, never markup
  });
  const last = dimensions[dimensions.length - 1];
  return { trace: { type: "parcoords", dimensions, labelangle: -12, labelside: "bottom",
    line: { color: last ? last.values : [], colorscale: "Viridis", showscale: true,
      colorbar: { title: { text: plain(dims[dims.length - 1]), side: "right" }, thickness: 12 } } },
  used: have.length };
}

// a field's value on an axis: numbers as they are, text as Plotly text
const axisValue = (v) => (typeof v === "string" ? plain(v) : v);

// A scatter of two fields; text values on categorical axes; each group in its style
function scatterTraces(runs, values, x, y, groupOf, styleOf) {
  const have = runs.filter((r) => (values[r.id] || {})[x] != null && (values[r.id] || {})[y] != null);
  const byGroup = new Map();
  for (const r of have) {
    const g = groupOf(r);
    if (!byGroup.has(g)) byGroup.set(g, []);
    byGroup.get(g).push(r);
  }
  const traces = [...byGroup].sort(([a], [b]) => a.localeCompare(b)).map(([g, rs]) => ({
    type: "scatter", mode: "markers", name: plain(g || "runs"), showlegend: Boolean(g),
    marker: { size: 9, color: styleOf(g).color, symbol: styleOf(g).symbol, opacity: 0.85 },
    x: rs.map((r) => axisValue(values[r.id][x])), y: rs.map((r) => axisValue(values[r.id][y])),
    text: rs.map((r) => plain(`#${r.id} ${r.name || ""}`)),
    hovertemplate: `%{text}<br>${plain(x)}: %{x}<br>${plain(y)}: %{y}<extra></extra>` }));
  return { traces, used: have.length };
}

// config.<path> | metrics.<key>[.last|.min|.max]: a field the runs page's columns take
const count = (n, what) => `${n} ${what}${n === 1 ? "" : "s"}`;
const isField = (f) => /^(config\.[^.].*|metrics\.[^.].*)$/.test(f);
// a config path the API's columns can name (server/routes/runs.py's _PART, part by part): a
// key with a space, a quote or other characters is compared in the config diff only
const PART = /^[A-Za-z0-9_:/\-[\]]+$/;
const nameable = (path) => path.split(".").every((p) => PART.test(p));

withLogin(async () => {
  const page = document.getElementById("page");
  page.hidden = false;
  const params = new URLSearchParams(location.search);
  const input = (id, size, value, placeholder = "", extra = {}) => el("input", { id, size, value: value || "", placeholder, ...extra });
  const runsInput = input("compare-runs", 16, params.get("runs"), "3, 5, 8");
  const qInput = input("compare-q", 40, params.get("q"), 'tag = "fig4" and config.alpha >= 8');
  const keyInput = input("compare-key", 14, params.get("key") || "loss", "", { list: "metric-keys" });
  const groupInput = input("compare-group", 18, params.get("group"), "config.target");
  const dimsInput = input("compare-dims", 50, params.get("dims"), "config.alpha, config.seed, metrics.test_acc.last");
  const xInput = input("compare-x", 22, params.get("x"), "config.alpha");
  const yInput = input("compare-y", 22, params.get("y"), "metrics.test_acc.last");
  const keys = el("datalist", { id: "metric-keys" });
  const row = (...kids) => el("div", { class: "filters" }, ...kids);
  const lbl = (inp, text) => el("label", { for: inp.id }, text);
  const form = el("form", { id: "compare-form" },
    row(lbl(runsInput, "runs "), runsInput, lbl(qInput, " and/or query "), qInput),
    row(lbl(keyInput, "metric "), keyInput, keys, lbl(groupInput, " group by "), groupInput,
      el("button", {}, "Compare")),
    row(lbl(dimsInput, "parallel coordinates "), dimsInput),
    row(lbl(xInput, "scatter x "), xInput, lbl(yInput, " y "), yInput));
  const status = el("p", { class: "meta", id: "compare-status" });
  const error = el("p", { class: "error", id: "compare-error", role: "alert" });
  const overlay = chartDiv("Overlay", "compare-chart");
  const diff = el("div", { id: "config-diff" });
  const provenance = el("div", { id: "provenance-diff" });
  const parcoords = chartDiv("Parallel coordinates", "compare-parcoords");
  const scatter = chartDiv("Scatter", "compare-scatter");
  const note = (id) => el("p", { class: "meta", id });
  const parNote = note("parcoords-note");
  const scatterNote = note("scatter-note");
  page.replaceChildren(el("h1", {}, "Compare runs"), form, error, status, overlay, diff, provenance,
    el("h2", {}, "Parallel coordinates"), parNote, parcoords, el("h2", {}, "Scatter"), scatterNote, scatter);

  let latest = 0;  // a submit while an earlier draw still waits: only the newest one draws
  const draw = async () => {
    const request = ++latest;
    const ids = runsInput.value.split(/[\s,]+/).map(Number).filter((n) => Number.isInteger(n) && n > 0);
    const q = qInput.value.trim();
    const key = keyInput.value.trim();
    const by = fields(groupInput.value);
    const url = new URLSearchParams();
    for (const [name, v] of [["runs", ids.join(",")], ["q", q], ["key", key], ["group", by.join(",")],
      ["dims", dimsInput.value.trim()], ["x", xInput.value.trim()], ["y", yInput.value.trim()]]) if (v) url.set(name, v);
    history.replaceState(null, "", `/compare?${url}`);
    error.textContent = "";
    if ((!ids.length && !q) || !key) return;
    // the runs: those named, those the query matches, or those named that it matches
    const named = ids.length ? `(${ids.map((i) => `id = ${i}`).join(" or ")})` : "";
    const where = [named, q && `(${q})`].filter(Boolean).join(" and ");
    const metric = `metrics.${key}.last`;
    let dims = fields(dimsInput.value).filter(isField);
    const axes = [xInput.value.trim(), yInput.value.trim()].filter(isField);
    const columns = [...new Set([...dims, ...axes, metric])];
    let listed;
    try {
      listed = await getJSON(`/api/runs?${new URLSearchParams({ q: where, order: "oldest", limit: MAX_RUNS,
        columns: columns.join(",") })}`);
    } catch (err) {
      if (err instanceof AuthError) throw err;
      if (request === latest) error.textContent = err.message;
      return;
    }
    if (request !== latest) return;
    let runs = listed.items;
    if (ids.length && !q) {  // in the order named
      const at = new Map(runs.map((r) => [r.id, r]));
      runs = ids.map((i) => at.get(i)).filter(Boolean);
      const missing = ids.filter((i) => !at.has(i));
      if (missing.length) {
        error.textContent = `${missing.length === 1 ? "There is no run" : "There are no runs"} `
          + `${missing.map((i) => `#${i}`).join(", ")}: deleted, or never made.`;
      }
    }
    const values = listed.values;
    // unset fields default to what differs: the differing config fields (up to 6) and the metric
    const { differ } = differing(runs);
    const differingFields = differ.filter((k) => k !== "kind" && nameable(k)).map((k) => `config.${k}`);
    const extra = [];
    if (!dims.length) dims = [...differingFields.slice(0, 6), metric];
    const x = isField(xInput.value.trim()) ? xInput.value.trim() : differingFields[0] || metric;
    const y = isField(yInput.value.trim()) ? yInput.value.trim() : metric;
    for (const f of [...dims, x, y]) if (!columns.includes(f)) extra.push(f);
    if (extra.length && runs.length) {  // the defaults' values, for the same runs
      try {
        const more = await getJSON(`/api/runs?${new URLSearchParams({ q: `(${runs.map((r) => `id = ${r.id}`).join(" or ")})`,
          limit: MAX_RUNS, columns: extra.join(",") })}`);
        for (const [id, v] of Object.entries(more.values)) values[id] = { ...(values[id] || {}), ...v };
      } catch (err) {  // the overlay and the diff are drawn all the same
        if (err instanceof AuthError) throw err;
        if (request === latest) error.textContent = err.message;
      }
    }

    // each group's values, and its style: the same in the overlay and the scatter
    const groupValues = (r) => Object.fromEntries(by.map((b) => [b,
      b.startsWith("config.") ? b.split(".").slice(1).reduce((v, p) => (v && typeof v === "object" ? v[p] : undefined), r.config)
        : b === "tag" ? r.tags.join("+") : b === "owner" ? r.owner : r[b]]));
    const groupOf = (r) => (by.length ? groupName(groupValues(r)) : "");
    // (Plotly's colours in the overlay's order of groups, else in the scatter's: by name)
    const byName = (a, b) => groupName(a).localeCompare(groupName(b));
    let styleOf = groupStyles(by.length ? runs.map(groupValues).sort(byName) : []);
    // the overlay: each group's mean ± SEM, or each run
    let traces = [];
    if (by.length) {
      try {
        const curves = await getJSON(`/api/run-groups/curves?${new URLSearchParams([
          ...by.map((b) => ["by", b]), ["key", key], ["q", where], ["max_runs", MAX_RUNS]])}`);
        if (request !== latest) return;
        styleOf = groupStyles([...curves.groups.map((g) => g.group), ...runs.map(groupValues).sort(byName)]);
        curves.groups.forEach((g) => {
          if (g.steps.length) traces.push(...groupBand(g, `${groupName(g.group)} (n=${g.n})`, styleOf(groupName(g.group))));
        });
        status.textContent = `${runs.length} runs in ${curves.groups.length} groups by ${by.join(", ")}; `
          + `lines are the mean over each group's runs, bands ± SEM${curves.bin_steps > 1 ? `, in bins of ${curves.bin_steps} steps` : ""}`;
      } catch (err) {
        if (err instanceof AuthError) throw err;
        if (request === latest) error.textContent = err.message;
      }
    } else {
      const drawn = runs.slice(0, MAX_OVERLAID);
      const series = await Promise.all(drawn.map((r) => getJSON(
        `/api/runs/${r.id}/metrics/${encodeURIComponent(key)}?max_points=2000`).catch(() => null)));
      if (request !== latest) return;
      traces = series.map((s, i) => s && { x: s.steps, y: s.values, type: "scatter", mode: "lines",
        name: plain(`#${drawn[i].id} ${drawn[i].name || drawn[i].kind}`) }).filter(Boolean);
      status.textContent = `${traces.length} of ${runs.length} runs have “${key}”`
        + (runs.length > drawn.length ? ` (the first ${drawn.length} drawn: group them to see all)` : "");
    }
    const known = new Set();
    if (runs.length) {
      const first = await getJSON(`/api/runs/${runs[0].id}/metrics`).catch(() => []);
      first.forEach((k) => known.add(k.key));
    }
    if (request !== latest) return;  // every await above: a newer draw owns the page
    keys.replaceChildren(...[...known].sort().map((k) => el("option", { value: k })));
    overlay.dataset.title = by.length ? `${key} by ${by.join(", ")}: mean ± SEM` : `${key}: ${runs.length} runs`;
    plot(overlay, traces, { title: { text: plain(overlay.dataset.title) }, xaxis: axis("step"),
      yaxis: axis(plain(key)) });
    drawDiff(diff, runs);
    drawProvenance(provenance, runs).catch(console.error);

    const par = parcoordsTrace(runs, values, dims);
    parNote.textContent = dims.length < 2 ? "Name two or more fields to draw parallel coordinates."
      : `${par.used} of ${runs.length} runs have every field (${dims.join(", ")}); drag along an axis to pick a range.`;
    parcoords.dataset.title = `${dims.length} fields of ${par.used} runs`;
    if (dims.length >= 2) plot(parcoords, [par.trace], { title: { text: parcoords.dataset.title }, margin: { t: 70, l: 70, r: 90, b: 60 } });
    const sc = scatterTraces(runs, values, x, y, groupOf, styleOf);
    scatterNote.textContent = `${sc.used} of ${runs.length} runs have ${x} and ${y}`;
    scatter.dataset.title = `${y} against ${x}`;
    const text = sc.traces.some((t) => t.x.some((v) => typeof v !== "number"));
    plot(scatter, sc.traces, { title: { text: plain(scatter.dataset.title) },
      xaxis: axis(plain(x), text ? { type: "category" } : {}), yaxis: axis(plain(y)) });
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); draw().catch(console.error); });
  const first = draw();
  plotly();  // loads while the first requests are answered
  await first;
});

// The code, packages, host and GPU of each run where they differ (GET /api/provenance-diff)
async function drawProvenance(host, runs) {
  const shown = runs.slice(0, MAX_DIFFED);
  if (shown.length < 2) { host.replaceChildren(); return; }
  const diff = await getJSON(`/api/provenance-diff?${new URLSearchParams(shown.map((r) => ["run_id", r.id]))}`);
  const text = (v) => (v === null || v === undefined ? "–" : Array.isArray(v) ? v.join(", ") || "none"
    : typeof v === "boolean" ? (v ? "yes" : "no") : String(v));
  const row = (name, values) => el("tr", {}, el("th", {}, name),
    ...values.map((v) => el("td", { class: text(v) !== text(values[0]) ? "differs" : "" }, text(v))));
  const missing = diff.missing.length ? ` Runs ${diff.missing.map((i) => `#${i}`).join(", ")} recorded none.` : "";
  const differ = diff.fields.length + diff.packages.length;
  host.replaceChildren(
    el("h2", {}, "Provenance: code, packages and machine where they differ"),
    el("p", { class: "meta" }, `${count(diff.fields.length, "field")} and ${count(diff.packages.length, "package")} differ; `
      + `${count(diff.same.fields, "field")} and ${count(diff.same.packages, "package")} are the same.${missing}`),
    differ ? el("div", { class: "scroll-x" }, el("table", { class: "scores", id: "provenance-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "field"),
        ...diff.runs.map((id) => el("th", {}, el("a", { href: `/runs/${id}` }, `#${id}`))))),
      el("tbody", {}, ...diff.fields.map((f) => row(f.field, f.values)),
        ...diff.packages.map((p) => row(`package ${p.name}`, p.versions))))) : "");
}

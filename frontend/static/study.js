// A study: Fig. 4 (noise accuracy, mean ± SEM bands per condition), Fig. 5/7 (median
// perturbation per condition and norm), Fig. 6 (robustness vs α), Table 1 (γ), paired
// tests against None, and its runs. Everything comes from GET /api/studies/{id}.
import { el, fmt, getJSON, when, withLogin } from "./api.js";
import { chartDiv, plot } from "./figures.js";

const studyId = Number(location.pathname.split("/").pop());
const COLORS = ["#444", "#d62728", "#9467bd", "#ff7f0e", "#1f77b4", "#2ca02c", "#8c564b"];
const label = (r) => (r.target === "none" ? "None" : `${r.target} α=${r.alpha}`);
const jobs = [];  // every div goes in first: a grid cell sized alone would clip later
const later = (div, data, layout) => jobs.push(() => plot(div, data, layout));

function band(row, color) {
  const { sigmas, mean, sem } = row.noise;
  const upper = mean.map((m, i) => m + sem[i]);
  const lower = mean.map((m, i) => m - sem[i]);
  return [
    { x: [...sigmas, ...sigmas.slice().reverse()], y: [...upper, ...lower.reverse()],
      fill: "toself", fillcolor: color + "33", line: { width: 0 }, hoverinfo: "skip",
      showlegend: false, type: "scatter", name: `${label(row)} ± SEM` },
    { x: sigmas, y: mean, name: `${label(row)} (n=${row.n})`, type: "scatter",
      mode: "lines+markers", line: { color } },
  ];
}

function table(head, rows) {
  return el("table", { class: "scores" },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
}

async function draw() {
  const data = await getJSON(`/api/studies/${studyId}`);
  const page = document.getElementById("page");
  const s = data.study;
  document.title = `neuroreg · ${s.name || `study ${s.id}`}`;
  const charts = el("div", { class: "charts" });
  page.replaceChildren(
    el("h1", {}, `#${s.id} ${s.name} `, el("span", { class: `badge ${s.status}` }, s.status)),
    el("p", { class: "meta" }, `study · owner ${s.owner} · created ${when(s.created_at)} · ${s.message}`),
    el("div", { class: "progress" }, el("div", { style: `width:${Math.round(s.progress * 100)}%` })),
    charts);
  const rows = data.robustness;
  const cond = [...new Set(rows.map((r) => r.target))];
  const labels = rows.map(label);
  const color = (r) => (r.target === "none" ? COLORS[0]
    : COLORS[1 + (labels.indexOf(label(r)) % (COLORS.length - 1))]);
  const noiseRows = rows.filter((r) => r.noise);
  if (noiseRows.length) {
    const div = chartDiv("Accuracy under Gaussian noise, mean ± SEM over seeds (Fig. 4)", "fig4");
    charts.append(div);
    later(div, noiseRows.flatMap((r) => band(r, color(r))), {
      title: { text: div.dataset.title }, xaxis: { title: { text: "noise σ" } },
      yaxis: { title: { text: "accuracy" } } });
  }
  for (const norm of ["linf", "l2", "l1", "l0"]) {
    const have = rows.filter((r) => r.medians[norm]);
    if (!have.length) continue;
    const div = chartDiv(`Median ${norm.toUpperCase()} perturbation per condition (Fig. 5, 7)`, `fig5-${norm}`);
    charts.append(div);
    later(div, [{ type: "bar", x: have.map(label), y: have.map((r) => r.medians[norm].mean),
      error_y: { type: "data", array: have.map((r) => r.medians[norm].sem), visible: true },
      marker: { color: have.map(color) }, name: `median ${norm}` }],
    { title: { text: div.dataset.title }, yaxis: { title: { text: `median ${norm} distance` } } });
  }
  for (const norm of ["linf", "l2", "l1", "l0"]) {
    const have = rows.filter((r) => r.curves && r.curves[norm]);
    if (!have.length) continue;
    const div = chartDiv(`Median ${norm.toUpperCase()} perturbation vs attack iterations (Fig. 5)`,
      `fig5-budget-${norm}`);
    charts.append(div);
    later(div, have.map((r) => ({ x: r.curves[norm].iterations, y: r.curves[norm].mean,
      error_y: { type: "data", array: r.curves[norm].sem, visible: true },
      name: label(r), type: "scatter", mode: "lines+markers", line: { color: color(r) } })),
    { title: { text: div.dataset.title }, xaxis: { title: { text: "attack iterations (cumulative)" }, type: "log" },
      yaxis: { title: { text: `median ${norm} (best so far)` } } });
  }
  const alphas = new Set(rows.filter((r) => r.target !== "none").map((r) => r.alpha));
  if (alphas.size > 1) {  // Fig. 6: robustness against α, one line per condition
    const div = chartDiv("Robustness vs α (Fig. 6): mean noise accuracy over σ > 0", "fig6");
    charts.append(div);
    const traces = cond.filter((c) => c !== "none").map((c) => {
      const rs = rows.filter((r) => r.target === c && r.noise).sort((a, b) => a.alpha - b.alpha);
      const avg = (r) => {
        const idx = r.noise.sigmas.map((x, i) => [x, i]).filter(([x]) => x > 0).map(([, i]) => i);
        return idx.reduce((a, i) => a + r.noise.mean[i], 0) / idx.length;
      };
      return { x: rs.map((r) => r.alpha), y: rs.map(avg), name: c, mode: "lines+markers",
        type: "scatter", line: { color: COLORS[cond.indexOf(c) % COLORS.length] } };
    });
    later(div, traces, { title: { text: div.dataset.title }, xaxis: { title: { text: "α" }, type: "log" },
      yaxis: { title: { text: "mean accuracy, σ > 0" } } });
  }
  jobs.splice(0).forEach((draw) => draw());
  if (data.gamma.length) {
    const layers = data.gamma[0].layers;
    page.append(el("h2", {}, "Final γ per tapped layer, mean over seeds (Table 1)"),
      table(["condition", "runs", ...layers.map((l) => `γ${l}`)], data.gamma.map((g) => [
        label(g), g.n, ...g.gamma_mean.map((m, i) => `${fmt(m, 2)} ± ${fmt(g.gamma_sem[i], 2)}`)])));
  }
  if (data.paired_vs_none.length) {
    page.append(el("h2", {}, "Each condition vs None, paired by seed"),
      table(["condition", "measure", "pairs", "mean difference", "paired t p", "Wilcoxon p"],
        data.paired_vs_none.map((p) => [`${p.condition} α=${p.alpha}`, p.measure, p.pairs,
          fmt(p.mean_difference, 4), fmt(p.t_test_p, 4), fmt(p.wilcoxon_p, 4)])));
  }
  page.append(el("h2", {}, `Runs (${data.runs.length})`),
    table(["#", "name", "kind", "status", "reads"], data.runs.map((r) => [
      el("a", { href: `/runs/${r.id}` }, String(r.id)), r.name, r.kind,
      el("span", { class: `badge ${r.status}` }, r.status),
      r.input_run_id ? el("a", { href: `/runs/${r.input_run_id}` }, `#${r.input_run_id}`) : "–"])));
  return s.status;
}

withLogin(async () => {
  document.getElementById("page").hidden = false;
  const tick = async () => {
    const status = await draw();
    if (!["succeeded", "failed", "cancelled"].includes(status)) setTimeout(tick, 5000);
  };
  await tick();
});

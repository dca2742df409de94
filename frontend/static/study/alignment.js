// Alignment against robustness (issue 38; ml.evaluate.alignment_summary.alignment_table,
// served as data.alignment): one model per point, an alignment score the user picks against
// a robustness measure the user picks, one colour per condition, the rank correlation across
// models with its bootstrap CI in the title; and each condition's mean ± SEM of every score.
// Nothing here is computed from the points: ρ and its CI are the server's.
import { el, fmt, settleParts } from "../api.js";
import { axis, meanSem } from "../figures.js";
import { symbolOf } from "../palette.js";
import { colour, condId, label, plotJobs, SHARED, table } from "./common.js";

const SCORE_LABELS = {
  rsa_mix_oracle: "RSA of the γ-mix with S_oracle",
  rsa_mix_oracle_normalized: "RSA with S_oracle / noise ceiling",
  rsa_mix_target: "RSA of the γ-mix with S_target",
  rsa_mix_true: "RSA of the γ-mix with S_true",
  rsa_best_oracle: "RSA of the best tap with S_oracle",
  cka_mix_oracle: "CKA of the γ-mix with the oracle",
  feve_best: "FEVE of the best tap",
  r2_best: "R² of the best tap",
};
const NORM_NAMES = { l2: "L2", linf: "L∞", l1: "L1", l0: "L0" };
const PERCEPT_LABELS = {
  v1_adv: (n) => `percept: predicted V1 moved by minimal ${n} adversarials (D)`,
  model_adv: (n) => `percept: deepest tap moved by minimal ${n} adversarials (D)`,
  specificity: (n) => `percept: specificity at ${n} (model ÷ predicted V1, each adv/control)`,
};
// percept_<name>_<norm> (ml.evaluate.alignment_summary.PERCEPT_SCORES)
function scoreLabel(s) {
  const m = /^percept_(.+)_(l2|linf|l1|l0)$/.exec(s);
  if (m && PERCEPT_LABELS[m[1]]) return PERCEPT_LABELS[m[1]](NORM_NAMES[m[2]]);
  return SCORE_LABELS[s] || s;
}
const TABLE_SCORES = ["rsa_mix_oracle", "rsa_mix_oracle_normalized", "cka_mix_oracle", "feve_best"];
const tableScores = (t) => [...TABLE_SCORES, ...t.scores.filter((s) => /^percept_specificity_/.test(s))];

// the picks in the page's address, beside the others' (study.js's remember keeps them)
function keepPicks() {
  const q = new URLSearchParams(location.search);
  q.set("ascore", document.getElementById("alignment-score").value);
  q.set("ameasure", document.getElementById("alignment-measure").value);
  SHARED.set("ascore", q.get("ascore"));
  SHARED.set("ameasure", q.get("ameasure"));
  history.replaceState(null, "", `${location.pathname}?${q}${location.hash}`);
}

// the section, once, after the frontier's: a heading, the two picks, the figure, the table
function section() {
  let host = document.getElementById("study-alignment");
  if (host) return host;
  host = el("section", { id: "study-alignment" },
    el("h2", {}, "Alignment against robustness, one point per model"),
    el("p", {}, el("label", { for: "alignment-score" }, "alignment score "),
      el("select", { id: "alignment-score" }), " ",
      el("label", { for: "alignment-measure" }, "against "), el("select", { id: "alignment-measure" }),
      el("span", { class: "meta", id: "alignment-note" })),
    el("div", { class: "charts", id: "alignment-charts" }),
    el("div", { id: "alignment-table" }));
  document.getElementById("frontier-matched").after(host);
  return host;
}

function fill(select, options, wanted) {
  const keep = select.value || wanted;
  select.replaceChildren(...options.map(([value, text]) => el("option", { value }, text)));
  if (options.some(([v]) => v === keep)) select.value = keep;
}

function pairOf(table_, score, measure) {
  return table_.pairs.find((p) => p.score === score && p.measure === measure);
}

function rhoText(pair) {
  if (!pair || pair.r === null) return `ρ: none (${pair ? pair.reason : "no model has both"})`;
  const ci = pair.ci_low === null ? "" : ` [${fmt(pair.ci_low, 2)}, ${fmt(pair.ci_high, 2)}]`;
  return `Spearman ρ = ${fmt(pair.r, 2)}${ci}, n = ${pair.n}`;
}

// one colour per condition, and within a condition one marker per α (smallest a circle)
function traces(pair) {
  const alphas = (target) => [...new Set(pair.points.filter((p) => p.condition === target)
    .map((p) => p.alpha))].sort((a, b) => a - b);
  const groups = new Map();
  for (const p of pair.points) {
    const row = { target: p.condition, alpha: p.alpha };
    const key = condId(row);
    if (!groups.has(key)) groups.set(key, { row, points: [] });
    groups.get(key).points.push(p);
  }
  return [...groups.values()].map(({ row, points }) => ({
    type: "scatter", mode: "markers", name: label(row), x: points.map((p) => p.x),
    y: points.map((p) => p.y),
    marker: { color: colour(row), size: 10, symbol: symbolOf(alphas(row.target).indexOf(row.alpha)) },
    customdata: points.map(() => condId(row)),
    text: points.map((p) => `run #${p.run_id} · seed ${p.seed}`),
    hovertemplate: "%{text}<br>x %{x:.3f}<br>y %{y:.4g}<extra>%{fullData.name}</extra>",
  }));
}

function drawTable(data) {
  const t = data.alignment;
  const scores = tableScores(t).filter((s) => t.conditions.some((c) => c.scores[s] && c.scores[s].n));
  document.getElementById("alignment-table").replaceChildren(
    el("h3", {}, "Alignment scores per condition, mean ± SEM over seeds"),
    table(["condition", "models", ...scores.map(scoreLabel)], t.conditions.map((c) => [
      label(c), c.n, ...scores.map((s) => meanSem(c.scores[s].mean, c.scores[s].sem, c.scores[s].n,
        (v) => fmt(v, 3)))]), { id: "alignment-scores" }));
}

// the scatter of the picked pair; a promise like the page's other parts (nothing when no
// evaluation ran the alignment part)
export async function drawAlignment(data) {
  const t = data.alignment;
  const old = document.getElementById("study-alignment");
  if (!t) { if (old) old.remove(); return; }
  section();
  const scoreSel = document.getElementById("alignment-score");
  const measureSel = document.getElementById("alignment-measure");
  const have = (s, m) => t.pairs.some((p) => p.score === s && (!m || p.measure === m));
  fill(scoreSel, t.scores.filter((s) => have(s)).map((s) => [s, scoreLabel(s)]),
    SHARED.get("ascore") || "rsa_mix_oracle");
  fill(measureSel, t.measures.filter((m) => have(scoreSel.value, m.name)).map((m) => [m.name, m.label]),
    SHARED.get("ameasure") || (t.measures.find((m) => have(scoreSel.value, m.name)) || {}).name);
  const redraw = () => { keepPicks(); settleParts([["The alignment figure", drawAlignment(data)]]); };
  scoreSel.onchange = redraw;
  measureSel.onchange = redraw;
  drawTable(data);
  const pair = pairOf(t, scoreSel.value, measureSel.value);
  document.getElementById("alignment-note").textContent = ` ${t.models} models ran the alignment or percept part`
    + (pair && pair.skipped ? `; ${pair.skipped} lack this score or measure and are left out` : "");
  if (!pair) return;
  const host = document.getElementById("alignment-charts");
  const div = document.getElementById("fig-alignment") || el("div", { class: "chart", id: "fig-alignment",
    role: "img", "aria-label": "alignment against robustness" });
  host.append(div);
  div.dataset.title = `Alignment against robustness: ${rhoText(pair)}`;
  div.dataset.subtitle = `one point per model; ρ's 95 % CI: bootstrap over models, ${t.replicates} resamples`;
  const measure = t.measures.find((m) => m.name === pair.measure);
  await plotJobs([[div, traces(pair), { xaxis: axis(scoreLabel(pair.score)),
    yaxis: axis(measure ? measure.label : pair.measure), uirevision: `${pair.score}|${pair.measure}` }]]);
}

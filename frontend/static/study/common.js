// What every part of the study page shares: the last GET /api/studies/{id}, a condition's
// name, label, link id, colour and dash, a table, a figure's div, a click to its runs.
import { el, fmt } from "../api.js";
import { chartIn, plot } from "../figures.js";
import { conditionColour, dashOf } from "../palette.js";

export const studyId = Number(location.pathname.split("/").pop());
export const SHARED = new URLSearchParams(location.search);  // a shared link's picks
export const TOLERANCE = 0.02;  // the server's default: kept out of the URL

export let latest = null;  // the last GET /api/studies/{id}: the study, its runs, aggregates
export function setLatest(data) { latest = data; }
export const trains = () => latest.runs.filter((r) => r.kind === "train");
export const showPaper = () => document.getElementById("paper-toggle").checked;

export const alphaOf = (r) => (r.target === "none" ? 0 : Number(r.alpha));
// a condition as the paper writes it (the server's labels: Neural (model), VGG, …)
export const condName = (target) => (latest && latest.paper && latest.paper.labels
  && latest.paper.labels[target]) || target;
export const label = (r) => (r.target === "none" ? "None" : `${condName(r.target)} α=${alphaOf(r)}`);
const slug = (s) => s.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").toLowerCase();
// stable ids for links and tests: the stored target name, not its label
export const condId = (r) => `cond-${slug(r.target === "none" ? "None" : `${r.target} α=${alphaOf(r)}`)}`;

// one colour per condition on every figure (palette.js: the same as on Compare), and
// within a condition one dash per α, smallest solid
export const colour = (r) => conditionColour(r.target);
export function dash(r) {
  const alphas = [...new Set(((latest && latest.robustness) || []).concat((latest && latest.gamma) || [])
    .filter((o) => o.target === r.target).map(alphaOf))].sort((a, b) => a - b);
  return dashOf(alphas.indexOf(alphaOf(r)));
}

export const signed = (v, digits) => (v === null || v === undefined ? "–" : `${v >= 0 ? "+" : ""}${fmt(v, digits)}`);
export const pval = (p) => (p === null || p === undefined ? "–" : p === 0 ? "0"
  : p < 1e-4 ? p.toExponential(1) : p.toFixed(4));
// a SEM of equal values comes back as float residue (1e-19): draw no error bar for it
export const bar = (v) => (v.sem > 1e-9 * Math.abs(v.mean) ? v.sem : 0);
export const BETTER_NOTE = (rows) => (rows.every((r) => r.higher_is_better)
  ? "Higher is better for every measure, so a positive difference favours the condition."
  : `Higher is better for ${rows.filter((r) => r.higher_is_better).map((r) => r.measure).join(", ")}; lower for the rest.`);
// what a paired comparison can say: its 95 % interval, higher/lower only when that interval
// excludes 0 (ml.study.paired_difference), and the difference these pairs could detect
export const interval = (t, digits = 4) => (t.ci_low === null || t.ci_low === undefined ? "–"
  : `[${signed(t.ci_low, digits)}, ${signed(t.ci_high, digits)}]`);
export const verdictCell = (t) => el("span", { class: `verdict ${t.verdict}`,
  title: t.verdict === "unresolved" ? "the 95 % interval covers 0 (or fewer than 2 pairs): these seeds cannot tell"
    : `the 95 % interval excludes 0: the condition is ${t.verdict} than None` }, t.verdict);
export const POWER_NOTE = " Verdict: higher or lower only when the 95 % interval (Student's t over the pairs) "
  + "excludes 0, else unresolved. Detectable: the smallest true difference this many pairs would find "
  + "with 80 % power, given their own spread — a smaller effect needs more seeds.";
export const wilcoxonFloor = (n) => (n > 0
  ? ` With ${n} pairs the two-sided Wilcoxon p cannot go below 2/2^${n} = ${fmt(2 / 2 ** n, 3)}.` : "");

export function table(head, rows, attrs = {}) {
  return el("table", { class: "scores", ...attrs },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => (r instanceof Node ? r
      : el("tr", {}, ...r.map((c) => el("td", {}, c)))))));
}

// one div per figure, kept across polls (a re-plot, not a new div) and in draw order
export function figure(host, id, title, subtitle = "", wide = false) {
  const div = chartIn(host, id, title);
  div.dataset.subtitle = subtitle;
  div.classList.toggle("wide", wide);
  host.append(div);  // a figure that appears on a later poll still lands in its place
  return div;
}

// a click on a bar or a curve point: that condition's runs
export function linkToRuns(div) {
  if (div.linked) return;
  div.linked = true;
  div.on("plotly_click", (ev) => {
    const cond = ev.points && ev.points[0] && ev.points[0].customdata;
    if (cond) location.hash = cond;
  });
}

// [div, traces, layout] jobs, plotted once every div is in place (a grid cell sized alone
// would clip later), each titled by its div and linked to its conditions' runs
export function plotJobs(jobs) {
  return Promise.all(jobs.map(async ([div, traces, layout]) => {
    await plot(div, traces, { title: { text: div.dataset.title,
      subtitle: { text: div.dataset.subtitle || "" } }, uirevision: div.id, ...layout });
    linkToRuns(div);
  }));
}

// the paper's reported values: hollow diamonds with their own legend entries, so they are
// never read as ours
export function paperTrace(name, x, y, targets) {
  return { type: "scatter", mode: "markers", name, x, y, cliponaxis: false,
    hovertemplate: `%{x}: %{y}<extra>${name}</extra>`,
    marker: { symbol: "diamond-open", size: 13, line: { width: 2 }, color: targets.map(conditionColour) } };
}

// Adversarial robustness: Fig. 5/7 (median smallest perturbation per condition and norm),
// Fig. 5's median against the attack budget, and AutoAttack's robust accuracy per ε.
import { axis } from "../figures.js";
import { bar, colour, condId, dash, figure, label, paperTrace, showPaper } from "./common.js";

// Fig. 5/7: one bar per condition and α for each norm the server measured (its labels:
// L2, L∞), the paper's medians (◇) beside ours on categories of their own
export function medianFigures(host, data) {
  const rows = data.robustness;
  const jobs = [];
  for (const { name: norm, label: normLabel } of data.norms) {
    const have = rows.filter((r) => r.medians[norm]);
    if (!have.length) continue;
    const div = figure(host, `fig5-${norm}`, `Median ${normLabel} perturbation (Fig. 5, 7)`,
      "smallest adversarial per image; mean ± SEM over seeds");
    const traces = [{ type: "bar", x: have.map(label), y: have.map((r) => r.medians[norm].mean),
      error_y: { type: "data", array: have.map((r) => r.medians[norm].sem), visible: true },
      marker: { color: have.map(colour) }, name: `median ${normLabel}`, customdata: have.map(condId) }];
    const reported = data.paper && data.paper.medians;
    const theirs = reported ? Object.keys(reported.values).filter((t) => reported.values[t][norm] !== undefined) : [];
    if (showPaper() && theirs.length) {
      traces.push(paperTrace(`paper (${reported.source})`,
        theirs.map((t) => `paper: ${data.paper.labels[t] || t}`), theirs.map((t) => reported.values[t][norm]), theirs));
    }
    jobs.push([div, traces, { xaxis: { tickangle: -40 }, yaxis: axis(`median ${normLabel} distance`) }]);
  }
  return jobs;
}

// Fig. 5's budget curves: the best median so far after each attack
export function budgetFigures(host, data) {
  const jobs = [];
  for (const { name: norm, label: normLabel } of data.norms) {
    const have = data.robustness.filter((r) => r.curves && r.curves[norm]);
    if (!have.length) continue;
    const div = figure(host, `fig5-budget-${norm}`, `Median ${normLabel} vs attack budget (Fig. 5)`,
      "best so far after each attack; mean ± SEM over seeds");
    jobs.push([div, have.map((r) => ({ x: r.curves[norm].iterations, y: r.curves[norm].mean,
      error_y: { type: "data", array: r.curves[norm].sem, visible: true },
      name: label(r), type: "scatter", mode: "lines+markers", line: { color: colour(r), dash: dash(r) },
      customdata: r.curves[norm].iterations.map(() => condId(r)) })),
    { xaxis: axis("attack iterations (cumulative)", { type: "log" }),
      yaxis: axis(`median ${normLabel} (best so far)`) }]);
  }
  return jobs;
}

// AutoAttack robust accuracy per threat model: one bar per condition, one shade per ε
export function autoattackFigures(host, data) {
  const jobs = [];
  for (const [norm, normLabel] of [["linf", "L∞"], ["l2", "L2"]]) {
    const have = data.robustness.filter((r) => r.autoattack && r.autoattack[norm]);
    if (!have.length) continue;
    const eps = [...new Set(have.flatMap((r) => r.autoattack[norm].eps))].sort((a, b) => a - b);
    // ε as the server writes it (8/255): ml/evaluate/record.py's eps_label
    const labelOf = Object.fromEntries(have.flatMap((r) => r.autoattack[norm].eps.map((e, i) =>
      [e, r.autoattack[norm].eps_labels[i]])));
    const custom = have.some((r) => r.autoattack[norm].versions.includes("custom"));
    const div = figure(host, `fig-autoattack-${norm}`, `AutoAttack robust accuracy, ${normLabel}`
      + (eps.length === 1 ? ` at ε = ${labelOf[eps[0]]}` : ""),
      `${eps.length > 1 ? "per ε; " : ""}mean ± SEM over seeds${custom ? "; a reduced (custom) AutoAttack, not RobustBench's standard" : ""}`);
    const traces = eps.map((e, k) => {
      const at = have.filter((r) => r.autoattack[norm].eps.includes(e));
      const i = (r) => r.autoattack[norm].eps.indexOf(e);
      return { type: "bar", name: `ε = ${labelOf[e]}`, x: at.map(label),
        y: at.map((r) => r.autoattack[norm].mean[i(r)]),
        error_y: { type: "data", array: at.map((r) => bar({ mean: r.autoattack[norm].mean[i(r)],
          sem: r.autoattack[norm].sem[i(r)] })), visible: true },
        marker: { color: at.map(colour), opacity: 1 - 0.45 * (k / Math.max(1, eps.length - 1)) },
        customdata: at.map(condId) };
    });
    jobs.push([div, traces, { barmode: "group", showlegend: eps.length > 1, xaxis: { tickangle: -40 },
      yaxis: axis("robust accuracy", { range: [0, 1] }) }]);
  }
  return jobs;
}

// The accuracy–robustness frontier: each condition as a line through its α values in
// (clean accuracy, robustness), and each condition against None at matched clean accuracy.
import { AuthError, el, fmt, getJSON } from "../api.js";
import { axis, legendOnce, meanSem, plot } from "../figures.js";
import { conditionColour } from "../palette.js";
import { alphaOf, bar, BETTER_NOTE, condId, figure, linkToRuns, signed, pval, studyId, table,
  wilcoxonFloor, interval, verdictCell, POWER_NOTE } from "./common.js";

// Each condition as a line through its α values in (clean accuracy, robustness), one
// subplot per robustness measure, mean ± SEM over seeds on both axes; None is one point.
export async function drawFrontier() {
  const host = document.getElementById("frontier-charts");
  const note = document.getElementById("frontier-note");
  const tolerance = document.getElementById("frontier-tolerance").value;
  let data;
  try {
    data = await getJSON(`/api/studies/${studyId}/frontier?tolerance=${encodeURIComponent(tolerance)}`);
  } catch (err) {  // 409: nothing evaluated yet, or no None; 422: a bad tolerance
    if (err instanceof AuthError) throw err;
    note.textContent = ` · ${err.message}`;
    note.className = "meta frontier-error";
    host.hidden = true;
    document.getElementById("frontier-matched").replaceChildren();
    return;
  }
  note.className = "meta";
  note.textContent = ` · None's clean accuracy ${fmt(data.none_clean_accuracy, 3)}; each condition`
    + " is compared with None at its α of closest clean accuracy, paired by seed";
  host.hidden = false;
  const measures = Object.keys(data.measures).filter((m) => m !== "clean_accuracy"
    && data.points.some((p) => p.measures[m] && p.measures.clean_accuracy));
  if (!measures.length) {  // evaluations with a clean accuracy but no robustness measure
    note.textContent += " · no robustness measure to draw against clean accuracy yet";
    host.hidden = true;
  }
  const conditions = Object.keys(data.curves).sort((a, b) => (a !== "none") - (b !== "none"));
  const columns = measures.length === 4 ? 2 : Math.min(measures.length, 3);
  const rows = Math.ceil(measures.length / columns);
  const traces = [];
  const layout = { grid: { rows, columns, pattern: "independent", xgap: 0.1, ygap: 0.3 },
    height: 330 * rows + 110 };
  const entry = legendOnce();
  measures.forEach((m, k) => {
    const ax = k ? String(k + 1) : "";
    layout[`xaxis${ax}`] = axis("clean accuracy (σ = 0)");
    layout[`yaxis${ax}`] = axis(data.measures[m].label);
    for (const c of conditions) {
      const ps = data.points.filter((p) => p.condition === c && p.measures[m] && p.measures.clean_accuracy);
      if (!ps.length) continue;
      const name = c === "none" ? "None" : c;
      const clean = ps.map((p) => p.measures.clean_accuracy);
      const y = ps.map((p) => p.measures[m]);
      const cells = ps.map((p) => ({ target: c, alpha: p.alpha }));
      traces.push({ type: "scatter", mode: "lines+markers+text", name, ...entry(c),
        xaxis: `x${ax}`, yaxis: `y${ax}`,
        x: clean.map((v) => v.mean), y: y.map((v) => v.mean),
        error_x: { type: "data", array: clean.map(bar), visible: true, thickness: 1 },
        error_y: { type: "data", array: y.map(bar), visible: true, thickness: 1 },
        text: ps.map((p) => `α=${alphaOf({ target: c, alpha: p.alpha })}`), textposition: "top center",
        textfont: { size: 12 }, cliponaxis: false, line: { color: conditionColour(c) },
        marker: { size: 8, color: conditionColour(c) }, customdata: cells.map(condId),
        hovertext: ps.map((p, i) => `${name} α=${p.alpha} (n=${p.n})<br>clean ${meanSem(clean[i].mean, clean[i].sem, p.n, (v) => fmt(v, 3))}`
          + `<br>${data.measures[m].label} ${meanSem(y[i].mean, y[i].sem, p.n, (v) => v.toPrecision(3))}`),
        hoverinfo: "text" });
    }
  });
  document.getElementById("frontier-matched").replaceChildren(...matchedTable(data));
  if (!measures.length) return;
  const div = figure(host, "frontier", "Clean accuracy against robustness, one line per condition through its α, mean ± SEM over seeds");
  div.classList.add("wide");
  await plot(div, traces, { title: { text: div.dataset.title }, uirevision: div.id, ...layout });
  linkToRuns(div);
}

// each condition against None at its matched α: one row per measure, or why none matched
function matchedTable(data) {
  const tol = data.tolerance;
  const rows = [];
  let fewest = 0;
  const tested = [];
  for (const m of data.matched) {
    if (!m.matched) {
      rows.push(el("tr", { class: "unmatched" }, el("td", {}, m.condition),
        el("td", { colspan: "10" }, `no α within ±${tol} (closest α=${m.alpha}, gap ${signed(m.clean_gap, 3)})`)));
      continue;
    }
    Object.entries(m.tests).forEach(([name, t], i) => {
      tested.push({ measure: data.measures[name].label, higher_is_better: t.higher_is_better });
      fewest = fewest ? Math.min(fewest, t.pairs) : t.pairs;
      rows.push(el("tr", {}, el("td", {}, i ? "" : m.condition), el("td", {}, i ? "" : `α=${m.alpha}`),
        el("td", {}, i ? "" : signed(m.clean_gap, 3)), el("td", {}, data.measures[name].label),
        el("td", {}, String(t.pairs)),
        el("td", {}, t.pairs === 1 ? `${signed(t.mean_difference, 4)} (n = 1)`
          : `${signed(t.mean_difference, 4)} ± ${fmt(t.sem_difference, 4)}`),
        el("td", {}, interval(t)), el("td", {}, verdictCell(t)), el("td", {}, fmt(t.detectable, 4)),
        el("td", {}, pval(t.t_test_p)), el("td", {}, pval(t.wilcoxon_p))));
    });
  }
  return [
    el("h3", {}, `Each condition vs None at matched clean accuracy (within ±${tol})`),
    table(["condition", "matched α", "clean gap", "measure", "pairs", "difference ± SEM", "95 % interval",
      "verdict", "detectable", "paired t p", "Wilcoxon p"],
      rows, { id: "frontier-table" }),
    el("p", { class: "meta" }, "Difference = condition − None at the matched α, paired by seed. ",
      tested.length ? BETTER_NOTE(tested) : "", tested.length ? POWER_NOTE : "", wilcoxonFloor(fewest))];
}


// Where γ went: Table 1 (final γ per tapped layer, mean over seeds, the paper's rows beside
// ours when it tapped the same layers) and r(S_k, S_target) of each tapped layer alone.
import { el, fmt } from "../api.js";
import { meanSem } from "../figures.js";
import { label, showPaper, table } from "./common.js";

export function gammaTables(data) {
  const parts = [];
  if (!data.gamma.length) return parts;
  const reported = showPaper() && data.paper && data.paper.gamma;
  const paperRows = reported ? reported.rows.map((r) => el("tr", { class: "paper-row" },
    el("td", {}, r.alpha ? `paper: ${data.paper.labels[reported.condition]} α=${r.alpha}` : "paper: None (α=0)"),
    el("td", {}, reported.seeds), ...r.gamma.map((v) => el("td", {}, fmt(v, 2))))) : [];
  const paperCaption = reported ? el("p", { class: "meta" }, `◇ paper rows: ${reported.source}, `
    + `layers ${reported.layers.join(", ")} of ResNet18; ${reported.note}.`) : null;
  const layers = data.gamma[0].layers;
  const sameLayers = reported && layers.join() === reported.layers.join();
  parts.push(el("h2", {}, "Final γ per tapped layer, mean over seeds (Table 1)"),
    table(["condition", "runs", ...layers.map((l) => `γ${l}`)], [...data.gamma.map((g) => [
      label(g), g.n, ...g.gamma_mean.map((m, i) => meanSem(m, g.gamma_sem[i], g.n, (v) => fmt(v, 2)))]),
    ...(sameLayers ? paperRows : [])], { id: "gamma-table" }));
  if (reported && !sameLayers) {  // other taps: the paper's table on its own
    parts.push(el("p", { class: "meta" }, `This study taps layers ${layers.join(", ")}; the paper's γ:`),
      table(["condition", "runs", ...reported.layers.map((l) => `γ${l}`)], paperRows, { id: "paper-gamma" }));
  }
  if (paperCaption) parts.push(paperCaption);
  const withR = data.gamma.filter((g) => g.r_taps_mean);
  if (withR.length) {  // which layers look like the target, beside where γ went
    const tapped = withR[0].layers;
    parts.push(el("h2", {}, "r(S_k, S_target) of each tapped layer alone, held-out stimuli, mean over seeds"),
      table(["condition", "runs", ...tapped.map((l) => `layer ${l}`)], withR.map((g) => [
        label(g), g.r_taps_n, ...g.r_taps_mean.map((m, i) => meanSem(m, g.r_taps_sem[i], g.r_taps_n, (v) => fmt(v, 3)))]),
      { id: "tap-r" }));
  }
  return parts;
}

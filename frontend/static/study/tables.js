// The study's tables: Table 1 and r per tap (gamma.js), the paired tests of each condition
// against None, its runs by condition (the rows figures link to: #cond-…) and every run;
// the box of how this study's setting differs from the paper's.
import { el, fmt } from "../api.js";
import { gammaTables } from "./gamma.js";
import { BETTER_NOTE, POWER_NOTE, condId, interval, label, pval, signed, table, trains, verdictCell,
  wilcoxonFloor } from "./common.js";

export function drawTables(data) {
  const host = document.getElementById("study-tables");
  const parts = gammaTables(data);
  if (data.paired_vs_none.length) {
    const pairs = data.paired_vs_none;
    const fewest = Math.min(...pairs.map((p) => p.pairs).filter((n) => n > 0));
    parts.push(el("h2", {}, "Each condition vs None, paired by seed"),
      table(["condition", "measure", "pairs", "mean difference ± SEM", "95 % interval", "verdict",
        "detectable", "paired t p", "Wilcoxon p"],
        pairs.map((p) => [`${p.condition} α=${p.alpha}`, p.measure, p.pairs,
          p.pairs === 1 ? `${signed(p.mean_difference, 4)} (n = 1)` : `${signed(p.mean_difference, 4)} ± ${fmt(p.sem_difference, 4)}`,
          interval(p), verdictCell(p),
          fmt(p.detectable, 4), pval(p.t_test_p), pval(p.wilcoxon_p)]), { id: "paired-tests" }),
      el("p", { class: "meta" }, "Difference = condition − None. ", BETTER_NOTE(pairs), POWER_NOTE,
        Number.isFinite(fewest) ? wilcoxonFloor(fewest) : ""));
  }
  // runs by condition: each seed's train run and its evaluation; the target of the figure links
  const evalOf = new Map(data.runs.filter((r) => r.kind === "evaluate").map((r) => [r.input_run_id, r]));
  const groups = new Map();
  for (const r of trains()) {
    const key = label(r.config);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const link = (r) => el("a", { href: `/runs/${r.id}`, title: r.status }, `#${r.id}`);
  parts.push(el("h2", {}, "Runs by condition"), table(
    ["condition", "seeds", "train runs", "evaluations", "overlay"],
    [...groups.entries()].map(([key, rs]) => el("tr", { id: condId(rs[0].config), tabindex: "-1" },
      el("td", {}, key), el("td", {}, rs.map((r) => r.config.seed).join(", ")),
      el("td", {}, ...rs.flatMap((r) => [link(r), " "])),
      el("td", {}, ...rs.flatMap((r) => (evalOf.has(r.id) ? [link(evalOf.get(r.id)), " "] : []))),
      el("td", {}, el("a", { href: `/compare?runs=${rs.map((r) => r.id).join(",")}&key=test_acc` },
        "compare")))), { id: "study-conditions" }));
  parts.push(el("h2", {}, `Runs (${data.runs.length})`),
    table(["#", "name", "kind", "status", "reads"], data.runs.map((r) => [
      el("a", { href: `/runs/${r.id}` }, String(r.id)), el("span", { class: "run-name", title: r.name || "" }, r.name || ""), r.kind,
      el("span", { class: `badge ${r.status}` }, r.status),
      r.input_run_id ? el("a", { href: `/runs/${r.input_run_id}` }, `#${r.input_run_id}`) : "–"])));
  host.replaceChildren(...parts);
  focusCondition();
}

export function focusCondition() {
  const row = location.hash.startsWith("#cond-") && document.getElementById(location.hash.slice(1));
  if (!row) return;
  for (const r of document.querySelectorAll("#study-conditions tr.picked")) r.classList.remove("picked");
  row.classList.add("picked");
  row.scrollIntoView({ block: "center" });
  row.focus({ preventScroll: true });
}

// how this study's setting differs from the paper's, from the study's own config
const SETTING_LABEL = { dataset: "dataset", backbone: "backbone", width: "width", epochs: "epochs",
  batch_size: "batch size", schedule: "optimizer", seeds: "seeds", alphas: "α", target: "target",
  attack_samples: "attacked samples", attacks: "attacks" };

export function drawPaperBox(data) {
  const host = document.getElementById("paper-setting");
  const paper = data.paper;
  if (!paper) { host.replaceChildren(); return; }
  const name = (r) => SETTING_LABEL[r.field] || r.field;
  const differ = paper.beside.filter((r) => r.same !== true);
  const same = paper.beside.filter((r) => r.same === true);
  host.replaceChildren(
    el("p", {}, el("strong", {}, "This study beside the paper's setting"), ` — ${paper.citation}.`),
    table(["differs", "this study", "the paper", "paper §"], differ.map((r) => [
      name(r), r.same === null ? `${r.ours} (whether it matches is not recorded)` : r.ours, r.paper, r.source]),
    { id: "paper-differences" }),
    el("p", { class: "meta" }, same.length ? `Same as the paper: ${same.map(name).join(", ")}.` : ""),
    el("p", { class: "meta", id: "paper-marks" }, "◇ marks the paper's values, never ours. ",
      ...[["Fig. 4", paper.noise_highest], ["Fig. 5", paper.medians], ["Table 1 (italic rows)", paper.gamma]]
        .map(([fig, v]) => `${fig}: ${v.note} (${v.source}). `)));
}

// A study: its header and the paper's setting beside it, then each figure family from its
// own module under study/ — noise.js (Fig. 4, Fig. 6, corruptions), attacks.js (Fig. 5/7,
// the attack budget, AutoAttack), frontier.js (the accuracy–robustness frontier and the
// matched tests), curves.js (training curves), matrices.js (S_target beside S_CNN) and
// tables.js (Table 1 via gamma.js, paired tests against None, runs by condition). Clicking
// a bar or a curve jumps to that condition's runs (#cond-…, a shareable URL); the paper's
// reported values can be laid over ours (◇). The page polls until the study has finished.
// Its Report button downloads the study as a folder that opens offline (docs/report.md).
import { api, ApiError, AuthError, clearError, el, fieldLabels, getJSON, settleParts, showError, when,
  withLogin } from "./api.js";
import { plotly } from "./figures.js";
import { drawAlignment } from "./study/alignment.js";
import { autoattackFigures, budgetFigures, medianFigures } from "./study/attacks.js";
import { latest, plotJobs, setLatest, SHARED, showPaper, studyId, TOLERANCE } from "./study/common.js";
import { CURVE_KEYS, drawCurves } from "./study/curves.js";
import { frequencyFigures } from "./study/frequency.js";
import { drawFrontier } from "./study/frontier.js";
import { drawModelMatrices, drawTarget, fillPicker } from "./study/matrices.js";
import { alphaFigure, corruptionFigures, noiseFigure } from "./study/noise.js";
import { drawPaperBox, drawTables, focusCondition } from "./study/tables.js";

const FINISHED = ["succeeded", "failed", "cancelled"];
const page = () => document.getElementById("page");

function skeleton() {
  page().replaceChildren(
    el("h1", {}, el("span", { id: "study-title" }), " ", el("span", { id: "study-status", class: "badge" })),
    el("p", { class: "meta", id: "study-meta" }),
    el("p", { class: "study-actions" },
      el("button", { type: "button", id: "study-report", title: "every figure (interactive, and as SVG, "
        + "PDF and CSV), the tables, configs, provenance and the commands that reproduce it, in one "
        + "folder that opens offline" }, "Download report (.zip)"),
      el("span", { class: "meta", id: "study-report-note", role: "status" })),
    el("div", { class: "progress" }, el("div", { id: "study-progress" })),
    el("p", { class: "study-note", id: "study-note", hidden: "" }),
    el("aside", { class: "paper-box", id: "paper-box", "aria-label": "the paper beside this study" },
      el("label", {}, el("input", { type: "checkbox", id: "paper-toggle" }),
        " show the paper's values (◇: Fig. 4 at the highest σ, Fig. 5 medians, Table 1)"),
      el("div", { id: "paper-setting" })),
    el("div", { class: "charts", id: "study-charts" }),
    el("h2", {}, "Accuracy–robustness frontier"),
    el("p", {}, el("label", { for: "frontier-tolerance" }, "matched when |clean accuracy − None's| ≤ "),
      el("input", { id: "frontier-tolerance", type: "number", min: "0.001", max: "1", step: "0.005",
        value: String(TOLERANCE) }),
      el("span", { class: "meta", id: "frontier-note" })),
    el("div", { class: "charts", id: "frontier-charts" }),
    el("div", { id: "frontier-matched" }),
    el("h2", {}, "Training curves, mean ± SEM over seeds"),
    el("p", {}, el("label", { for: "curve-key" }, "metric "),
      el("select", { id: "curve-key" }, ...CURVE_KEYS.map((k) => el("option", { value: k }, k))),
      el("span", { class: "meta", id: "curve-note" })),
    el("div", { class: "charts", id: "study-curves" }),
    el("h2", {}, "Similarity: S_target beside S_CNN of a trained model"),
    el("p", { class: "meta", id: "sim-note" }),
    el("p", {}, el("label", { for: "sim-run" }, "trained model "), el("select", { id: "sim-run" }),
      el("span", { class: "meta", id: "sim-run-note" })),
    el("div", { class: "charts", id: "study-matrices" }),
    el("div", { id: "study-tables" }));
  // the picked curve and model live in the URL (?curve=sim_r&model=all), like the anchor
  const curve = document.getElementById("curve-key");
  const wanted = SHARED.get("curve");
  if (wanted && !CURVE_KEYS.includes(wanted)) curve.append(el("option", { value: wanted }, wanted));
  if (wanted) curve.value = wanted;
  curve.onchange = () => { remember(); settleParts([["The training curves", drawCurves()]]); };
  document.getElementById("sim-run").onchange = () => {
    remember(); settleParts([["S_CNN of the picked model", drawModelMatrices()]]);
  };
  const tolerance = document.getElementById("frontier-tolerance");
  if (SHARED.get("tolerance")) tolerance.value = SHARED.get("tolerance");
  tolerance.onchange = () => { remember(); settleParts([["The frontier", drawFrontier()]]); };
  const report = document.getElementById("study-report");
  report.onclick = () => downloadReport(report);
  const toggle = document.getElementById("paper-toggle");
  toggle.checked = SHARED.get("paper") === "1";
  toggle.onchange = () => {
    remember();
    if (!latest) return;
    settleParts([["The figures", drawFigures(latest)]]);
    drawTables(latest);
  };
}

// every div goes in first, in the paper's order, then each is plotted
function drawFigures(data) {
  const host = document.getElementById("study-charts");
  return plotJobs([...noiseFigure(host, data), ...medianFigures(host, data),
    ...budgetFigures(host, data), ...autoattackFigures(host, data),
    ...corruptionFigures(host, data), ...alphaFigure(host, data)]);
}

// the report is drawn on the server (GET /api/studies/{id}/report, the same zip that
// `neuroreg report` unpacks): a few seconds, said beside the button, as is a refusal
async function downloadReport(button) {
  const note = document.getElementById("study-report-note");
  button.disabled = true;
  note.className = "meta";
  note.textContent = " drawing the report: every figure as SVG and PDF takes a few seconds…";
  try {
    const blob = await (await api(`/api/studies/${studyId}/report`)).blob();
    const url = URL.createObjectURL(blob);
    el("a", { href: url, download: `study-${studyId}-report.zip` }).click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    note.textContent = ` study-${studyId}-report.zip: unzip it and open index.html, no server needed`;
  } catch (err) {
    if (err instanceof AuthError) throw err;
    note.className = "meta error";
    note.textContent = ` no report: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

function remember() {
  const q = new URLSearchParams();
  const curve = document.getElementById("curve-key").value;
  const model = document.getElementById("sim-run").value;
  if (curve && curve !== "test_acc") q.set("curve", curve);
  if (model) q.set("model", model);
  const tolerance = document.getElementById("frontier-tolerance").value;
  if (tolerance !== "" && Number(tolerance) !== TOLERANCE) q.set("tolerance", tolerance);
  if (showPaper()) q.set("paper", "1");
  for (const [key, id] of [["ascore", "alignment-score"], ["ameasure", "alignment-measure"]]) {
    if (SHARED.get(key) && document.getElementById(id)) q.set(key, SHARED.get(key));
  }
  history.replaceState(null, "", `${location.pathname}${q.size ? `?${q}` : ""}${location.hash}`);
}

function drawHeader(s) {
  document.title = `neuroreg · ${s.name || `study ${s.id}`}`;
  document.getElementById("study-title").textContent = `#${s.id} ${s.name}`;
  const badge = document.getElementById("study-status");
  badge.textContent = s.status; badge.className = `badge ${s.status}`;
  document.getElementById("study-meta").textContent =
    `study · owner ${s.owner} · created ${when(s.created_at)} · ${s.message}`;
  document.getElementById("study-progress").style.width = `${Math.round(s.progress * 100)}%`;
  const note = document.getElementById("study-note");
  const text = typeof s.config.note === "string" ? s.config.note.trim() : "";
  note.textContent = text;
  note.hidden = !text;
}

async function draw(first) {
  const [data, labels] = await Promise.all([getJSON(`/api/studies/${studyId}`), fieldLabels()]);
  data.corruptionLabels = labels.corruptions;
  data.normLabels = labels.norms;
  setLatest(data);
  drawHeader(data.study);
  drawPaperBox(data);
  const jobs = [["S_target", drawTarget()], ["The figures", drawFigures(data)],
    ["The frontier", drawFrontier()], ["The alignment figure", drawAlignment(data)],
    ["The training curves", drawCurves()],
    ["The frequency figures", Promise.resolve(data).then((d) =>  // after the other figures
      plotJobs(frequencyFigures(document.getElementById("study-charts"), d)))]];
  if (fillPicker(data) || first) jobs.push(["S_CNN of the picked model", drawModelMatrices()]);
  drawTables(data);
  // a figure that failed is said at the top of the page; once all draw, that goes
  if (!(await settleParts(jobs))) clearError();
  return data.study.status;
}

// A study page that cannot be drawn says why: no such run, or a run of another kind
// (with a link to its own page), or the server's answer
async function notDrawn(err) {
  if (!(err instanceof ApiError) || err.status !== 404) throw err;
  const run = await getJSON(`/api/runs/${studyId}`).catch(() => null);
  if (!run) { showError(err, { title: `Study ${studyId} not found` }); return; }
  showError(err, { title: `Run ${studyId} is not a study`, more: [
    ["Open it at ", el("a", { href: `/runs/${studyId}`, id: "run-page-link" }, `/runs/${studyId}`)]] });
}

withLogin(async () => {
  page().hidden = false;
  skeleton();
  const first = draw(true);
  plotly();  // after the first request is out
  window.addEventListener("hashchange", focusCondition);
  let status;
  // studyDrawn: the first draw is done, every part drawn or said failed (the report's
  // builder, server/report/capture.py, waits for it)
  try { status = await first; } catch (err) {
    await notDrawn(err);
    document.documentElement.dataset.studyDrawn = "failed";
    return;
  }
  document.documentElement.dataset.studyDrawn = "true";
  while (!FINISHED.includes(status)) {
    await new Promise((r) => setTimeout(r, 5000));
    try {
      status = await draw(false);
    } catch (err) {  // what is shown stays; the page says the refresh failed and tries again
      if (!(err instanceof ApiError)) throw err;
      showError(err, { title: "This study could not be refreshed", keep: true });
    }
  }
});

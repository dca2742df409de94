import { api, ApiError, clearError, el, fieldLabels, fmt, getJSON, settleParts, showError, when, withLogin } from "./api.js";
import { axis, chartIn, plain, plot, plotly } from "./figures.js";
import { drawAlignmentPart } from "./alignment.js";
import { drawFrequency } from "./frequency.js";
import { drawLineage } from "./lineage.js";
import { drawPercept } from "./percept.js";
import { drawProvenance, drawSystem, followLogs } from "./runlogs.js";
import { drawLinks, drawTags, setUpManage } from "./runmanage.js";
import { drawPairs, drawScores, drawSimilarity, drawSpectra, drawTargets } from "./similarity.js";

const runId = Number(location.pathname.split("/").pop());
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
// keys grouped into one chart each; anything else gets a chart of its own
const GROUPS = [
  { title: "Loss", match: (k) => /loss/.test(k) },
  { title: "Accuracy", match: (k) => /acc/.test(k) },
  { title: "γ per tapped layer over training (Eq. 10), stacked", match: (k) => /^gamma\//.test(k) },
  { title: "r(S_CNN, S_target), held-out stimuli", match: (k) => /^sim_r(\/\d+)?$/.test(k) },
];
const NOISE = "Accuracy under Gaussian noise (Fig. 4)";
const ORDER = [NOISE, ...GROUPS.map((g) => g.title)];

function chartFor(key, norms) {
  const group = GROUPS.find((g) => g.match(key));
  if (group) return group.title;
  const norm = key.match(/^budget_median_(\w+)$/);
  return norm ? `Median ${norms[norm[1]] || norm[1]} vs attack budget` : key;
}

// γ exists only where a run learned it: of train runs, those with a target and α > 0 (one
// stored before this may carry a flat γ it never learned); a script's run shows what it logs
const learnsGamma = (run) => run.kind !== "train" || ((run.config.target || "none") !== "none"
  && Number(run.config.alpha ?? 20) > 0);

function ensureDiv(title) {
  return chartIn(document.getElementById("charts"), `chart-${title.replace(/[^A-Za-z0-9]/g, "_")}`,
    title);
}

// γ/<k> → the tapped layer's number (1, 5, 9, 13, 17 for ResNet18) once the run has them
function layerOf(run, key) {
  const k = Number(key.split("/")[1]);
  const layers = run.result && run.result.layers;
  return layers ? layers[k] : `[${k}]`;
}

function xTitle(title) {
  if (title === NOISE) return "noise σ (image units, images in [0, 1])";
  return title.includes("attack budget") ? "attack iterations (cumulative)" : "step";
}

// every series of the run in one request, each reduced by the server to ≤ 2,000 points
const seriesOf = () => getJSON(`/api/runs/${runId}/series?max_points=2000`);

async function drawCharts(run, series) {
  const byChart = new Map();
  const norms = (await fieldLabels()).norms;
  if (!learnsGamma(run)) series = series.filter((s) => !s.key.startsWith("gamma/"));
  series = series.filter((s) => !s.key.startsWith("system/"));  // the System figure's
  // an evaluation's AutoAttack and corruption scores: in its record, with their ε; its
  // per-cut-off frequency scores: in the frequency figures, against the cut-off; its
  // alignment headlines (means over scans): in the alignment section's table, once it has one
  if (run.kind === "evaluate") {
    series = series.filter((s) => !/^(autoattack_|corruption_acc|frequency_cutoff$|lowpass_acc$|highpass_acc$|hybrid_)/.test(s.key));
    if (run.result && run.result.alignment) series = series.filter((s) => !s.key.startsWith("alignment/"));
  }
  // similarity scores and evaluation medians are single values: a table, not charts
  const single = run.kind === "similarity" || run.kind === "evaluate"
    ? series.filter((s) => s.total === 1 && !s.key.startsWith("noise_")) : [];
  drawScores(single, norms);
  // the noise curve: accuracy (noise_acc) against σ (noise_sigma), both indexed by σ's rank
  const sigma = series.find((s) => s.key === "noise_sigma");
  const noiseAcc = series.find((s) => s.key === "noise_acc");
  if (sigma && noiseAcc) {
    byChart.set(NOISE, [{ x: sigma.values, y: noiseAcc.values, name: "accuracy",
      type: "scatter", mode: "lines+markers" }]);
  }
  for (const s of series) {
    if (single.includes(s) || s.key.startsWith("noise_")) continue;
    const title = chartFor(s.key, norms);
    if (!byChart.has(title)) byChart.set(title, []);
    const gamma = s.key.startsWith("gamma/");
    byChart.get(title).push(gamma
      ? { x: s.steps, y: s.values, name: `γ${layerOf(run, s.key)}`, type: "scatter",
        mode: "lines", stackgroup: "gamma", line: { width: 0.5 } }  // stacked: Σγ = 1
      : { x: s.steps, y: s.values, type: "scatter",
        mode: s.values.length < 60 ? "lines+markers" : "lines",
        // sim_r: Eq. 10's γ-mix; sim_r/<k>: tap k's S_k alone
        name: s.key === "sim_r" ? "S_CNN (γ-weighted)"
          : s.key.startsWith("sim_r/") ? `S at layer ${layerOf(run, s.key)}` : plain(s.key),
        ...(s.key.startsWith("sim_r/") ? { line: { dash: "dot" } } : {}) });
  }
  const titles = [...byChart.keys()].sort((a, b) =>
    (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b));
  // every div first, then plot: a grid cell sized while it was alone would overflow later
  const divs = titles.map(ensureDiv);
  await Promise.all(titles.map((title, n) => {
    const traces = byChart.get(title);
    const div = divs[n];
    div.dataset.points = traces.reduce((sum, t) => sum + t.x.length, 0);
    return plot(div, traces, {
      title: { text: plain(title) },  // a chart of its own is titled by a key the run logged
      xaxis: axis(xTitle(title), title.includes("attack budget") ? { type: "log" } : {}),
      ...(title.startsWith("γ") ? { yaxis: axis("γ_k", { range: [0, 1] }) } : {}),
      uirevision: title,
    });
  }));
  if (titles.length === 0 && single.length > 0) document.getElementById("charts").hidden = true;
}

function drawRun(run) {
  document.title = `neuroreg · ${run.name || `run ${run.id}`}`;
  document.getElementById("run-title").textContent = `#${run.id} ${run.name || ""}`;
  const badge = document.getElementById("run-status");
  badge.textContent = run.status; badge.className = `badge ${run.status}`;
  const meta = document.getElementById("run-meta");
  // the project links to its runs
  meta.replaceChildren(`${run.kind} · project `, el("a", { id: "run-project", title: `the runs of project ${run.project}`,
    href: `/?${new URLSearchParams({ q: `project = "${run.project}"` })}` }, run.project),
  ` · owner ${run.owner} · created ${when(run.created_at)}` +
    (run.started_at ? ` · started ${when(run.started_at)}` : "") +
    (run.finished_at ? ` · finished ${when(run.finished_at)}` : ""));
  drawTags(run);  // the run it reads, its study and its evaluations: drawLinks
  document.getElementById("run-progress").style.width = `${Math.round(run.progress * 100)}%`;
  document.getElementById("run-message").textContent = withEta(run);
  const error = document.getElementById("run-error");
  error.hidden = !run.error; error.textContent = run.error || "";
  document.getElementById("run-config").textContent = JSON.stringify(run.config, null, 2);
  document.getElementById("cancel").hidden = FINISHED.has(run.status);
}

// The run's message with one time left: a job's own (an evaluation's, at its rate) is
// taken out and the page's, from the whole run's progress, said once while it runs; a
// finished or cancelled run has none
const JOB_ETA = / · about [^·]* left/g;
function withEta(run) {
  const message = (run.message || "").replace(JOB_ETA, "");
  if (run.status !== "running" || !run.started_at || !(run.progress > 0.01)) return message;
  const elapsed = (Date.now() - new Date(run.started_at).getTime()) / 1000;
  const left = Math.max(0, elapsed * (1 - run.progress) / run.progress);
  return `${message} · ${Math.round(run.progress * 100)}% · about ${left < 90 ? `${Math.round(left)} s`
    : left < 5400 ? `${Math.round(left / 60)} min` : `${(left / 3600).toFixed(1)} h`} left`;
}

const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)} %`);

function scoreTable(id, head, rows) {
  return el("table", { class: "scores", id },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
}

// A succeeded evaluation's RobustBench-style record: clean accuracy, AutoAttack per threat
// model and ε (after each component), the corruptions as a heatmap, the minimal medians
async function drawRecord(norms) {
  const rec = await getJSON(`/api/runs/${runId}/record`);
  const { corruptions: names } = await fieldLabels();
  const tables = [el("p", { class: "meta" },
    `${rec.architecture} on ${rec.dataset} · ${rec.target === "none" ? "None" : `${rec.target} α=${rec.alpha}`}`
    + ` · seed ${rec.seed} · clean accuracy ${pct(rec.clean_acc)}${rec.clean_acc_n ? ` (${rec.clean_acc_n} test images)` : ""}`)];
  const aa = Object.entries(rec.autoattack);
  if (aa.length) {
    const components = Object.keys(aa[0][1][0].after);
    tables.push(el("h3", {}, "AutoAttack robust accuracy"), scoreTable("record-autoattack",
      ["threat model", "ε", "robust accuracy", ...components.map((c) => `after ${c}`), "samples", "version",
        "inconsistent with minimal"],
      aa.flatMap(([norm, rows]) => rows.map((r) => [norms[norm] || norm, r.eps_label, pct(r.robust_acc),
        ...components.map((c) => pct(r.after[c])), r.n, r.version,
        r.inconsistent === null || r.inconsistent === undefined ? "–" : String(r.inconsistent)]))));
    if (aa.some(([, rows]) => rows.some((r) => r.version !== "standard"))) {
      tables.push(el("p", { class: "meta" }, "custom: fewer steps or queries than the standard AutoAttack "
        + "(100 steps, 5,000 Square queries); not comparable with RobustBench's numbers."));
    }
  }
  const minimal = Object.keys(rec.minimal.median);
  if (minimal.length) {
    tables.push(el("h3", {}, "Minimal adversarial perturbations"), scoreTable("record-minimal",
      ["norm", "median", "mean", "never broken"], minimal.map((n) => [norms[n] || n, fmt(rec.minimal.median[n], 4),
        fmt(rec.minimal.mean[n], 4), rec.minimal.unbroken[n] ?? "–"])));
    if (rec.minimal.n) {
      tables.push(el("p", { class: "meta" }, `Over the ${rec.minimal.n} samples of the fixed set: one the model `
        + "already gets wrong counts 0, one no attack broke ∞."));
    }
  }
  if (rec.soundness) tables.push(...soundnessTables(rec.soundness, norms));
  if (rec.mechanism) tables.push(...mechanismTables(rec.mechanism, norms));
  const charts = document.getElementById("record-charts");
  // shown before its figure is drawn: a figure drawn hidden takes plotly's 700 px width
  document.getElementById("record").hidden = false;
  if (rec.corruptions) {
    const c = rec.corruptions;
    tables.push(el("p", {}, `Mean accuracy under the common corruptions: ${pct(rec.corruptions_acc)} `
      + `(${c.n} test images, ${c.source === "published" ? "the published CIFAR-C files"
        : `generated here with seed ${c.seed}`}; clean on the same ${pct(c.clean_accuracy)})`));
    const div = chartIn(charts, "record-corruptions", "Accuracy under corruptions");
    div.classList.add("wide");
    div.style.height = `${170 + 24 * c.names.length}px`;  // rows readable, never stretched
    await plot(div, [{ type: "heatmap", z: c.names.map((n) => c.accuracy[n]), x: c.severities.map(String),
      y: c.names.map((n) => names[n] || n), zmin: 0, zmax: 1, colorscale: "Viridis",
      colorbar: { title: { text: "accuracy" }, thickness: 12 },
      hovertemplate: "%{y}, severity %{x}: %{z:.3f}<extra></extra>" }],
    { title: { text: "Accuracy under corruptions (CIFAR-10-C's, per severity)" },
      xaxis: axis("severity", { type: "category" }),
      yaxis: { autorange: "reversed", automargin: true, type: "category" } });
  }
  document.getElementById("record-tables").replaceChildren(...tables);
  document.getElementById("record-download").onclick = () => {
    const url = URL.createObjectURL(new Blob([JSON.stringify(rec, null, 1)], { type: "application/json" }));
    el("a", { href: url, download: `neuroreg-record-${runId}.json` }).click();
    URL.revokeObjectURL(url);
  };
  document.getElementById("record").hidden = false;
}

// A probe's median beside the white-box median on the same samples, and how many samples
// it beat every gradient attack on by more than 10 %
const probe = (median, white, smaller, n) => (n === null || n === undefined ? "–"
  : `${fmt(median, 4)} vs ${fmt(white, 4)} (${smaller} of ${n} smaller)`);

// The soundness part: a verdict per norm, its evidence, and the warning signs
function soundnessTables(sd, norms) {
  const rows = Object.entries(sd.norms);
  const out = [el("h3", {}, "Attack soundness"), scoreTable("record-soundness",
    ["norm", "verdict", "best median (attacked samples)", "largest attack ratio", "HopSkipJump vs white-box",
      "transfer vs white-box", "AutoAttack inconsistent"],
    rows.map(([n, r]) => [norms[n] || n, r.verdict, fmt(r.best_median, 4),
      r.disagreement === null ? "–" : `${fmt(r.disagreement, 2)}×`,
      probe(r.hsja_median, r.hsja_white_box_median, r.hsja_smaller, r.hsja_samples),
      probe(r.transfer_median, r.transfer_white_box_median, r.transfer_smaller, r.transfer_samples),
      r.autoattack_inconsistent ?? "–"]))];
  const warnings = rows.flatMap(([, r]) => r.warnings);
  if (warnings.length) out.push(el("ul", { class: "meta" }, ...warnings.map((w) => el("li", {}, w))));
  out.push(el("p", { class: "meta" }, `HopSkipJump and transfer on the first ${sd.samples} samples`
    + (sd.transfer_skipped ? `; no transfer attacks: ${sd.transfer_skipped}`
      : sd.reference_run ? `; transferred from run #${sd.reference_run}` : "")
    + ". The best median is over the correctly classified samples the minimal search attacked "
    + "(the table above counts misclassified samples as 0)."));
  return out;
}

// The mechanism part: input gradients, the subspace shares, each tap's r to the target
function mechanismTables(m, norms) {
  const shares = Object.entries(m.subspace_share);
  const out = [el("h3", {}, "Mechanism"), scoreTable("record-mechanism", ["measure", "median", "mean", "samples"], [
    ["‖∇ₓ CE‖₂ at the clean images", fmt(m.grad_l2_median, 4), fmt(m.grad_l2_mean, 4), m.grad_n ?? "–"],
    ["‖∇ₓ CE‖₁", fmt(m.grad_l1_median, 2), fmt(m.grad_l1_mean, 2), m.grad_n ?? "–"],
    ...shares.map(([n, v]) => [`${norms[n] || n} perturbations' energy in the top ${m.subspace_k} PCs`,
      fmt(v, 3), "", m.subspace_share_n[n] ?? "–"]),
    ...(m.subspace_share_random === null ? [] : [[`random directions' (k/D = ${fmt(m.subspace_expected_random, 4)})`,
      fmt(m.subspace_share_random, 3), "", ""]])])];
  if (m.subspace_skipped) out.push(el("p", { class: "meta" }, `Subspace share: ${m.subspace_skipped}`));
  if (m.tap_r) {
    out.push(scoreTable("record-taps", ["layer", ...m.tap_layers.map(String), "γ-mix"],
      [["r(S_layer, S_target)", ...m.tap_r.map((r) => fmt(r, 3)), fmt(m.tap_r_mix, 3)]]),
    el("p", { class: "meta" }, `target: ${m.tap_source}, on its held-out stimuli`));
  } else {
    out.push(el("p", { class: "meta" }, `Layer similarity: ${m.tap_skipped}`));
  }
  return out;
}

async function drawArtifacts() {
  const items = await getJSON(`/api/runs/${runId}/artifacts`);
  document.getElementById("artifacts").replaceChildren(...items.map((a) => {
    const link = el("a", { href: "#" }, a.name);
    link.onclick = async (ev) => {
      ev.preventDefault();
      try {
        const blob = await (await api(`/api/runs/${runId}/artifacts/${encodeURIComponent(a.name)}`)).blob();
        const url = URL.createObjectURL(blob);
        el("a", { href: url, download: a.name }).click();
        URL.revokeObjectURL(url);
      } catch (err) { showError(err, { title: `${a.name} could not be downloaded`, keep: true }); }
    };
    return el("li", {}, link, ` · ${a.media_type} · ${(a.size_bytes / 1024).toFixed(1)} KiB`);
  }));
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

withLogin(async () => {
  // the first requests all leave at once, then plotly.js loads while they are answered
  let first = [getJSON(`/api/runs/${runId}`), seriesOf(), getJSON(`/api/runs/${runId}/matrices`)];
  first.forEach((p) => p.catch(() => null));  // a missing run: said once, below
  plotly();
  let shown;
  try {
    shown = await first[0];
  } catch (err) {  // no such run: say so, not an empty page
    if (err instanceof ApiError && err.status === 404) {
      showError(err, { title: `Run ${runId} not found` });
      return;
    }
    throw err;
  }
  if (shown.kind === "study") { location.replace(`/studies/${runId}`); return; }
  document.getElementById("run").hidden = false;
  document.getElementById("cancel").onclick = async () => {
    try {
      await api(`/api/runs/${runId}/cancel`, { method: "POST" });
      drawRun(await getJSON(`/api/runs/${runId}`));
    } catch (err) { showError(err, { title: "The run was not cancelled", keep: true }); }
  };
  setUpManage(shown, drawRun).catch(console.error);
  let links = drawLinks(shown).catch(console.error);
  // what it reads and what reads it: asked now, drawn after the run's own first figures
  let chartsDrawn;
  settleParts([["The lineage", drawLineage(runId, new Promise((done) => { chartsDrawn = done; }))]]);
  followLogs(runId);  // polls on its own until the run has finished
  let provenance = false;
  // poll while the run is live; one last pass after it finishes
  for (;;) {
    let run, series, names;
    try {
      [run, series, names] = await Promise.all(first || [getJSON(`/api/runs/${runId}`),
        seriesOf(), null]);
    } catch (err) {  // the first answers failed: the page says why; a later pass: keep
      if (first || !(err instanceof ApiError)) throw err;  // what is shown, say it, retry
      showError(err, { title: "This run could not be refreshed", keep: true });
      await pause(5000);
      continue;
    }
    if (!first) clearError();
    first = null;
    drawRun(run);
    const charts = drawCharts(run, series);
    chartsDrawn(charts.catch(() => null));
    const system = drawSystem(runId).catch(() => null);
    if (!provenance) provenance = await drawProvenance(runId).catch(() => false);
    if (FINISHED.has(run.status)) {
      // all at once, each on its own: a run without figures.json still shows its targets
      const similarity = run.kind === "similarity" && run.status === "succeeded";
      // a finished train run with a target: S_target, S_CNN and their difference, one order
      const trained = run.kind === "train" && run.status === "succeeded" && run.input_run_id;
      // the matrices asked for on the first pass, unless the run finished since
      const matrices = similarity || trained ? (names && names.length ? names
        : await getJSON(`/api/runs/${runId}/matrices`)) : [];
      const evaluated = run.kind === "evaluate" && run.status === "succeeded" && run.input_run_id;
      if (run.status !== shown.status) links = drawLinks(run).catch(console.error);
      await Promise.all([system, links]);
      // each part on its own: one that failed is said at the top, the others drawn
      await settleParts([["The charts", charts], ["The artifacts", drawArtifacts()],
        ...(evaluated ? [["The record", fieldLabels().then((l) => drawRecord(l.norms))]] : []),
        ...(run.kind === "evaluate" && run.result && run.result.frequency
          ? [["The frequency figures", fieldLabels().then((l) => drawFrequency(run.result, l.norms))]] : []),
        ...(run.kind === "evaluate" && run.result && run.result.alignment
          ? [["The alignment figures", drawAlignmentPart(run.result)]] : []),
        ...(run.kind === "evaluate" && run.result && run.result.percept
          ? [["The percept figures", fieldLabels().then((l) => drawPercept(run.result, l.norms))]] : []),
        ...(similarity ? [["The similarity figures", drawSimilarity(runId)],
          ["The stimulus pairs", drawPairs(runId, matrices)],
          ["The spectra", drawSpectra(runId, matrices)]] : []),
        ["The matrices", drawTargets(runId, run.result || {}, matrices)]]);
      break;
    }
    await Promise.all([charts, system]);
    await pause(2000);
  }
});

// The study's similarity matrices: S_target of its target run, S_CNN (γ-weighted) of a
// picked trained model beside it with their difference, or every condition's first seed.
import { artifactNames, el, getJSON } from "../api.js";
import { drawMatrix, matrixDiv, matrixViews, withChoice } from "../similarity.js";
import { label, latest, SHARED, trains } from "./common.js";

// S_target of the study's target run, drawn at once; S_CNN of the picked model beside it
const views = {};

export async function drawTarget() {
  const host = document.getElementById("study-matrices");
  const target = latest.study.input_run_id || latest.study.config.target_run;
  const note = document.getElementById("sim-note");
  if (!target) { note.textContent = "This study trains without a similarity target."; return; }
  note.replaceChildren("S over all stimuli of ", el("a", { href: `/runs/${target}` }, `similarity run #${target}`),
    " in one shared order and colour scale; overviews are exact block means, zoom in for exact cells.");
  if (!views.target) {
    views.target = matrixDiv("S_target neural-model", host);
    await drawMatrix(views.target, { runId: target, name: "neural-model",
      title: `S_target (run #${target}, neural-model)` });
  }
}

function pickable(data) {
  return data.runs.filter((r) => r.kind === "train" && r.status === "succeeded" && r.input_run_id);
}

// the first seed of each condition: what "every condition" puts side by side
function firstSeeds(runs) {
  const first = new Map();
  for (const r of [...runs].sort((a, b) => a.config.seed - b.config.seed || a.id - b.id)) {
    if (!first.has(label(r.config))) first.set(label(r.config), r);
  }
  return [...first.values()];
}

export function fillPicker(data) {
  const select = document.getElementById("sim-run");
  const runs = pickable(data);
  const every = firstSeeds(runs).length > 1 ? ["all"] : [];
  const ids = [...every, ...runs.map((r) => String(r.id))];
  if (ids.join() === [...select.options].map((o) => o.value).join()) return false;
  const keep = select.value;
  select.replaceChildren(
    ...every.map((v) => el("option", { value: v }, "every condition side by side (first seed)")),
    ...runs.map((r) => el("option", { value: r.id },
      `#${r.id} ${label(r.config)} seed ${r.config.seed}`)));
  select.disabled = !runs.length;
  if (!runs.length) {
    select.append(el("option", { value: "" }, "– appears when a train run with a target finishes –"));
    return false;
  }
  // the strongest neural-model regularization first: where S_CNN should look most like S_target
  const neural = runs.filter((r) => r.config.target === "neural-model");
  const best = neural.sort((a, b) => b.config.alpha - a.config.alpha || a.config.seed - b.config.seed)[0]
    || runs[0];
  const shared = SHARED.get("model");  // a shared link's pick, until the user picks
  select.value = ids.includes(keep) ? keep : shared && ids.includes(shared) ? shared
    : String(best.id);
  return select.value !== keep;
}

function clearModelViews() {
  for (const key of ["model", "diff"]) {
    if (views[key]) { (views[key].closest(".cell") || views[key]).remove(); delete views[key]; }
  }
  for (const div of views.every || []) div.remove();
  views.every = [];
}

// γ-weighted S_CNN of each condition's first seed, beside S_target in one colour scale
async function drawEveryCondition() {
  const runs = firstSeeds(pickable(latest));
  const lists = await Promise.all(runs.map((r) => getJSON(`/api/runs/${r.id}/matrices`)));
  clearModelViews();
  const host = document.getElementById("study-matrices");
  const shown = runs.map((r, k) => [r, lists[k]]).filter(([, names]) => names.includes("cnn"));
  document.getElementById("sim-run-note").textContent = shown.length ? ""
    : ` no ${(await artifactNames()).model} yet to compute S_CNN from`;
  views.every = shown.map(([r]) => matrixDiv(`S_CNN ${label(r.config)}`, host));
  await Promise.all(shown.map(([r, names], k) => {
    const view = matrixViews(r.id, names, r.result || {}).find((v) => v.name === "cnn" && !v.minus);
    return drawMatrix(views.every[k], { ...view,
      title: `S_CNN (γ), ${label(r.config)} seed ${r.config.seed}, run #${r.id}` });
  }));
}

export async function drawModelMatrices() {
  if (document.getElementById("sim-run").value === "all") { await drawEveryCondition(); return; }
  const id = Number(document.getElementById("sim-run").value);
  if (!id) return;
  const run = trains().find((r) => r.id === id);
  const names = await getJSON(`/api/runs/${id}/matrices`);
  const host = document.getElementById("study-matrices");
  document.getElementById("sim-run-note").textContent = names.length ? ""
    : ` run #${id} has no ${(await artifactNames()).model} to compute S_CNN from`;
  const want = matrixViews(id, names, (run && run.result) || {}).filter((v) =>
    v.name === "cnn" || v.minus === "target" || (!names.includes("cnn") && v.name === "cnn-0"));
  clearModelViews();
  const model = want.find((v) => !v.minus);
  const diff = want.find((v) => v.minus);
  const jobs = [];
  if (model) {
    views.model = matrixDiv("S_CNN of the picked model", host);
    jobs.push(drawMatrix(views.model, { ...model, title: `${model.title}, run #${id}` }));
  }
  if (diff) {
    views.diff = matrixDiv("S_CNN minus S_target", host);
    withChoice(diff, views.diff);
    jobs.push(drawMatrix(views.diff, { ...diff, title: `S_CNN − its S_target, run #${id}` }));
  }
  await Promise.all(jobs);
}

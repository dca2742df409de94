// Training curves of a study: one logged metric (test_acc unless picked) per condition and
// α, mean ± SEM over seeds at each step.
import { el, getJSON } from "../api.js";
import { axis, band, plain, plot } from "../figures.js";
import { colour, condId, dash, figure, label, linkToRuns, studyId } from "./common.js";

export const CURVE_KEYS = ["test_acc", "sim_r", "loss", "sim_loss", "task_loss", "test_loss"];

export async function drawCurves() {
  const key = document.getElementById("curve-key").value;
  const data = await getJSON(`/api/studies/${studyId}/curves?key=${encodeURIComponent(key)}&max_points=500`)
    .catch((err) => ({ rows: [], keys: [], error: err.message }));
  const select = document.getElementById("curve-key");
  const known = data.keys.length ? data.keys.filter((k) => !k.startsWith("noise_")) : CURVE_KEYS;
  if (known.join() !== [...select.options].map((o) => o.value).join()) {
    select.replaceChildren(...known.map((k) => el("option", { value: k }, k)));
    select.value = known.includes(key) ? key : known[0];
  }
  document.getElementById("curve-note").textContent = data.error ? ` · ${data.error}`
    : data.bin_steps > 1 ? ` · each point averages ${data.bin_steps} steps` : "";
  const host = document.getElementById("study-curves");
  const div = figure(host, "study-curve", `${key} over training`, "mean ± SEM over seeds", true);
  if (!data.rows.length) { host.hidden = true; return; }
  host.hidden = false;
  const traces = data.rows.flatMap((r) => band(r.steps, r.mean, r.sem, {
    name: `${label(r)} (n=${r.n})`, color: colour(r), dash: dash(r),
    customdata: r.steps.map(() => condId(r)),
    ...(r.n_at ? { text: r.n_at.map((n) => `mean of ${n} seed${n === 1 ? "" : "s"}`) } : {}) }));
  div.dataset.title = `${key} over training`;
  await plot(div, traces, { title: { text: plain(div.dataset.title), subtitle: { text: "mean ± SEM over seeds" } }, uirevision: key,
    xaxis: axis("step"), yaxis: axis(plain(key)) });  // a key a run logged
  linkToRuns(div);
}

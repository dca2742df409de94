// Compare runs: pick runs and a metric, see them overlaid. /compare?runs=3,5,8&key=loss
import { el, getJSON, withLogin } from "./api.js";
import { chartDiv, plot, plotly } from "./figures.js";

withLogin(async () => {
  const page = document.getElementById("page");
  page.hidden = false;
  const params = new URLSearchParams(location.search);
  const runsInput = el("input", { id: "compare-runs", size: 30, value: params.get("runs") || "",
    placeholder: "3, 5, 8" });
  const keyInput = el("input", { id: "compare-key", size: 20, value: params.get("key") || "loss",
    list: "metric-keys" });
  const keys = el("datalist", { id: "metric-keys" });
  const form = el("form", { id: "compare-form", class: "filters" },
    el("label", { for: "compare-runs" }, "runs "), runsInput,
    el("label", { for: "compare-key" }, "metric "), keyInput, keys, el("button", {}, "Overlay"));
  const div = chartDiv("Overlay", "compare-chart");
  const status = el("p", { class: "meta", id: "compare-status" });
  page.replaceChildren(el("h1", {}, "Compare runs"), form, status, div);
  const draw = async () => {
    const ids = runsInput.value.split(/[\s,]+/).map(Number).filter((n) => n > 0);
    const key = keyInput.value.trim();
    history.replaceState(null, "", `/compare?runs=${ids.join(",")}&key=${encodeURIComponent(key)}`);
    if (!ids.length || !key) return;
    // every request at once: the runs, their metric keys and the picked series
    const [runs, keyLists, series] = await Promise.all([
      Promise.all(ids.map((id) => getJSON(`/api/runs/${id}`).catch(() => null))),
      Promise.all(ids.map((id) => getJSON(`/api/runs/${id}/metrics`).catch(() => []))),
      Promise.all(ids.map((id) => getJSON(
        `/api/runs/${id}/metrics/${encodeURIComponent(key)}?max_points=2000`).catch(() => null))),
    ]);
    const known = new Set(keyLists.flat().map((k) => k.key));
    keys.replaceChildren(...[...known].sort().map((k) => el("option", { value: k })));
    const traces = series.map((s, i) => s && runs[i] && {
      x: s.steps, y: s.values, type: "scatter", mode: "lines",
      name: `#${ids[i]} ${runs[i].name || runs[i].kind}` }).filter(Boolean);
    status.textContent = `${traces.length} of ${ids.length} runs have “${key}”`;
    div.dataset.title = `${key}: runs ${ids.join(", ")}`;
    plot(div, traces, { title: { text: div.dataset.title }, xaxis: { title: { text: "step" } } });
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); draw(); });
  const first = draw();
  plotly();  // loads while the first requests are answered
  await first;
});

import { api, AuthError, el, fmt, getJSON, when, withLogin } from "./api.js";

const PAGE = 25;
let offset = Number(new URLSearchParams(location.search).get("offset")) || 0;
const picked = new Set();

const chosen = () => document.getElementById("columns").value.split(",")
  .map((c) => c.trim()).filter(Boolean);
// Each refresh numbers its requests: an answer that arrives after a later request was sent
// (filling the form fires several) is dropped, so the table is always the last query's
const latest = { runs: 0, groups: 0 };
const shown = (v) => (v === null || v === undefined ? "–" : typeof v === "number"
  ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v));

function query() {
  const q = new URLSearchParams({ limit: PAGE, offset });
  for (const id of ["filters", "query-form"]) {
    for (const [k, v] of new FormData(document.getElementById(id))) if (v && k !== "group") q.set(k, v);
  }
  return q;
}

// Group by: per group the count and each chosen metric column's mean ± SEM over its runs
// (GET /api/run-groups with the same query); the page's other filters do not apply
async function drawGroups() {
  const by = document.getElementById("group").value.split(",").map((c) => c.trim()).filter(Boolean);
  const box = document.getElementById("groups");
  const request = ++latest.groups;
  if (!by.length) { box.hidden = true; return; }
  const metrics = chosen().filter((c) => c.startsWith("metrics."));
  const params = new URLSearchParams();
  by.forEach((b) => params.append("by", b));
  metrics.forEach((m) => params.append("metric", m));
  const q = document.getElementById("q").value.trim();
  if (q) params.set("q", q);
  let data;
  try { data = await getJSON(`/api/run-groups?${params}`); } catch (err) {
    if (err instanceof AuthError) throw err;
    if (request !== latest.groups) return;
    document.getElementById("q-error").textContent = err.message;
    box.hidden = true;
    return;
  }
  if (request !== latest.groups) return;
  document.getElementById("group-head").replaceChildren(...[...by, "runs", ...metrics.map((m) => `${m} (mean ± SEM)`)]
    .map((h) => el("th", {}, h)));
  document.getElementById("group-rows").replaceChildren(...data.groups.map((g) => el("tr", {},
    ...by.map((b) => el("td", {}, shown(g.group[b]))), el("td", {}, String(g.count)),
    ...metrics.map((m) => { const v = g.metrics[m];
      return el("td", {}, !v.n ? "–" : v.n === 1 ? `${v.mean.toPrecision(4)} (n=1)`
        : `${v.mean.toPrecision(4)} ± ${v.sem.toPrecision(2)} (n=${v.n})`); }))));
  const curves = new URLSearchParams({ group: by.join(","), key: (metrics[0] || "metrics.loss")
    .replace(/^metrics\./, "").replace(/\.(last|min|max)$/, "") });
  if (q) curves.set("q", q);
  document.getElementById("group-note").replaceChildren(`${data.groups.length} groups of the query's runs`
    + (metrics.length ? "" : "; add metrics.… columns to average them") + " · ",
  el("a", { id: "group-compare", href: `/compare?${curves}` }, "their curves in Compare"));
  box.hidden = false;
}

async function refresh() {
  const request = ++latest.runs;
  drawGroups().catch(console.error);
  const columns = chosen();  // the ones this request asks for
  let page;
  try {
    page = await getJSON(`/api/runs?${query()}`);
    if (request !== latest.runs) return;
    document.getElementById("q-error").textContent = "";
  } catch (err) {  // a query the server cannot read: its message names the position
    if (err instanceof AuthError) throw err;
    if (request !== latest.runs) return;
    document.getElementById("q-error").textContent = err.message;
    return;
  }
  const rows = page.items.map((r) => el("tr", {},
    el("td", {}, (() => {
      const box = el("input", { type: "checkbox", "aria-label": `compare run ${r.id}` });
      box.checked = picked.has(r.id);
      box.onchange = () => { if (box.checked) picked.add(r.id); else picked.delete(r.id); link(); };
      return box;
    })()),
    el("td", {}, r.id),
    // a long name on one line, cut with an ellipsis; all of it on hover
    el("td", { class: "run-name" }, el("a", { href: r.kind === "study" ? `/studies/${r.id}` : `/runs/${r.id}`,
      title: r.name || `run ${r.id}` }, r.name || `run ${r.id}`)),
    el("td", {}, r.owner),
    el("td", { class: "run-project" }, el("a", { href: `/?${new URLSearchParams({ q: `project = "${r.project}"` })}`,
      title: `the runs of project ${r.project}` }, r.project)),
    el("td", {}, r.kind),
    el("td", {}, el("span", { class: `badge ${r.status}` },
      r.status === "running" ? `running ${Math.round(r.progress * 100)}%` : r.status)),
    el("td", {}, ...r.tags.map((t) => el("a", { class: "badge", href: `/?tag=${encodeURIComponent(t)}` }, t))),
    el("td", {}, when(r.created_at)),
    el("td", {}, fmt(r.last_metrics.loss)), el("td", {}, fmt(r.last_metrics.acc)),
    el("td", {}, fmt(r.last_metrics.test_acc)),
    ...columns.map((c) => el("td", { class: "col-extra" }, shown((page.values[r.id] || {})[c])))));
  // the chosen config and metric columns, after the fixed ones
  const head = document.getElementById("run-head");
  head.querySelectorAll(".col-extra").forEach((th) => th.remove());
  head.append(...columns.map((c) => el("th", { class: "col-extra" }, c)));
  document.getElementById("run-rows").replaceChildren(...rows);
  const last = Math.min(offset + PAGE, page.total);
  document.getElementById("page-info").textContent =
    page.total ? `${offset + 1}–${last} of ${page.total}` : "no runs";
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = last >= page.total;
}

function link() {
  document.getElementById("compare-link").href = `/compare?runs=${[...picked].join(",")}`;
}

function remember() {
  const q = query(); q.delete("limit");
  if (!offset) q.delete("offset");
  const group = document.getElementById("group").value.trim();
  if (group) q.set("group", group);
  history.replaceState(null, "", `/?${q}`);
}

// MLflow's client prints links into its own UI's routes ("View run … at: <server>/#/
// experiments/1/runs/5"): here they open the run's page, or the experiment's runs (its
// neuroreg tag, docs/mlflow.md)
async function followMlflowLink() {
  const link = location.hash.match(/^#\/experiments\/(\d+)(?:\/runs\/(\d+))?/);
  if (!link) return false;
  if (link[2]) { location.replace(`/runs/${link[2]}`); return true; }
  const { experiment } = await getJSON(`/api/2.0/mlflow/experiments/get?experiment_id=${link[1]}`);
  const tag = (experiment.tags || []).find((t) => t.key === "neuroreg.tag");
  if (!tag) return false;
  location.replace(`/?tag=${encodeURIComponent(tag.value)}`);
  return true;
}

withLogin(async () => {
  if (await followMlflowLink()) return;
  document.getElementById("runs").hidden = false;
  const params = new URLSearchParams(location.search);
  const form = document.getElementById("filters");
  for (const name of ["owner", "kind", "status", "tag", "parent_id", "order"]) {
    if (params.get(name)) form.elements[name].value = params.get(name);
  }
  if (params.get("deleted")) {  // the run page deleted a run and came here
    document.getElementById("q-error").before(el("p", { class: "meta", id: "deleted-note", role: "status" },
      `Run #${Number(params.get("deleted"))} was deleted.`));
  }
  const search = document.getElementById("query-form");
  for (const name of ["q", "sort", "columns", "group"]) if (params.get(name)) search.elements[name].value = params.get(name);
  search.elements.desc.checked = params.get("desc") === "true";
  // the query runs on Enter or Search (not on every key: half a query is a 422)
  search.addEventListener("submit", (ev) => { ev.preventDefault(); offset = 0; remember(); refresh(); });
  search.elements.desc.addEventListener("change", () => { offset = 0; remember(); refresh(); });
  form.elements.top_level.checked = params.get("top_level") === "true";  // hides study runs' children
  form.addEventListener("input", () => { offset = 0; remember(); refresh(); });
  document.getElementById("export").onclick = async () => {  // every matching run, not one page
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(search)) if (v) params.set(k, v);
    const blob = await (await api(`/api/runs.csv?${params}`)).blob();
    const url = URL.createObjectURL(blob);
    el("a", { href: url, download: "runs.csv" }).click();
    URL.revokeObjectURL(url);
  };
  document.getElementById("prev").onclick = () => { offset = Math.max(0, offset - PAGE); remember(); refresh(); };
  document.getElementById("next").onclick = () => { offset += PAGE; remember(); refresh(); };
  await refresh();
  setInterval(refresh, 3000);
});

// Every evaluated model, one row each, sorted by a clicked column (GET /api/leaderboard).
// The sort, order, ε and filters live in the URL; each row's record downloads as JSON.
import { api, el, fmt, getJSON, withLogin } from "./api.js";

const PAGE = 50;
const FILTERS = ["eps_linf", "eps_l2", "dataset", "target", "owner", "study"];
const state = { sort: "autoattack_linf", order: "desc", offset: 0 };
const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1));
// "8/255" in the ε box means 8/255: the way the field writes it
const epsValue = (text) => {
  const m = text.trim().match(/^(\d*\.?\d+)\s*\/\s*(\d*\.?\d+)$/);
  return m ? String(Number(m[1]) / Number(m[2])) : text.trim();
};

// what an abbreviated header means, on hover
const TITLES = { autoattack_linf: "AutoAttack robust accuracy, L∞ threat model, at this ε",
  autoattack_l2: "AutoAttack robust accuracy, L2 threat model, at this ε",
  corruptions_acc: "mean accuracy over CIFAR-10-C's 15 corruptions × 5 severities",
  clean_acc: "accuracy on the clean test split (σ = 0 of the noise curve)",
  median_l2: "median minimal L2 perturbation (the paper's Fig. 5)",
  median_linf: "median minimal L∞ perturbation" };

// [column key, header, cell]: a key sorts; null does not
function columns(labels) {
  const aa = (norm, r) => {
    const v = r[`autoattack_${norm}`];
    if (v === null || v === undefined) return "–";
    const custom = r[`autoattack_${norm}_version`] === "custom";
    return el("span", custom ? { title: "a reduced (custom) AutoAttack: fewer steps or queries than the standard" } : {},
      pct(v) + (custom ? "*" : ""));
  };
  return [
    ["evaluation_run", "eval", (r) => el("a", { href: `/runs/${r.evaluation_run}` }, `#${r.evaluation_run}`)],
    [null, "model", (r) => el("a", { href: `/runs/${r.model_run}`, title: r.name || "" }, `#${r.model_run}`)],
    [null, "target", (r) => r.target],
    ["alpha", "α", (r) => (r.target === "none" ? "–" : String(r.alpha))],
    ["seed", "seed", (r) => (r.seed ?? "–")],
    ["clean_acc", "clean", (r) => pct(r.clean_acc)],
    ["autoattack_linf", `AA L∞ ${labels.linf}`, (r) => aa("linf", r)],
    ["autoattack_l2", `AA L2 ${labels.l2}`, (r) => aa("l2", r)],
    ["corruptions_acc", "corrupt.", (r) => (r.corruptions_source === "published"
      ? el("span", { title: "on the published CIFAR-C files" }, `${pct(r.corruptions_acc)} ᵖ`)
      : pct(r.corruptions_acc))],
    ["median_l2", "median L2", (r) => fmt(r.median_l2, 3)],
    ["median_linf", "median L∞", (r) => fmt(r.median_linf, 4)],
    [null, "network · data", (r) => `${r.architecture.replace(/ \(width (\d+)\)/, " w$1")} · ${r.dataset}`],
    [null, "study", (r) => (r.study ? el("a", { href: `/studies/${r.study}` }, `#${r.study}`) : "–")],
    [null, "owner", (r) => r.owner],
    [null, "record", (r) => {
      const a = el("a", { href: `/api/runs/${r.evaluation_run}/record?download=true`, class: "download" }, "JSON");
      a.onclick = async (ev) => {  // the token goes in a header: fetch, then save the blob
        ev.preventDefault();
        const blob = await (await api(`/api/runs/${r.evaluation_run}/record`)).blob();
        const url = URL.createObjectURL(blob);
        el("a", { href: url, download: `neuroreg-record-${r.evaluation_run}.json` }).click();
        URL.revokeObjectURL(url);
      };
      return a;
    }],
  ];
}

function query() {
  const q = new URLSearchParams({ sort: state.sort, order: state.order, limit: PAGE, offset: state.offset });
  const form = document.getElementById("lb-filters");
  for (const name of FILTERS) {
    const v = form.elements[name].value.trim();
    if (v) q.set(name, name.startsWith("eps_") ? epsValue(v) : v);
  }
  return q;
}

function remember() {
  const q = new URLSearchParams({ sort: state.sort, order: state.order });
  if (state.offset) q.set("offset", state.offset);
  const form = document.getElementById("lb-filters");
  for (const name of FILTERS) if (form.elements[name].value.trim()) q.set(name, form.elements[name].value.trim());
  history.replaceState(null, "", `/leaderboard?${q}`);
}

async function refresh() {
  const error = document.getElementById("lb-error");
  let page;
  try {
    page = await getJSON(`/api/leaderboard?${query()}`);
    error.textContent = "";
  } catch (err) {
    error.textContent = err.message;  // a 422 names the field (an ε outside (0, 1], …)
    return;
  }
  const cols = columns(page.eps_labels);
  document.getElementById("lb-head").replaceChildren(...cols.map(([key, title]) => {
    if (!key) return el("th", {}, title);
    const on = key === page.sort;
    const button = el("button", { type: "button", class: "sort", "data-key": key, title: TITLES[key] || `sort by ${title}` },
      title, on ? (page.order === "desc" ? " ▼" : " ▲") : "");
    button.onclick = () => {
      state.order = on && state.order === "desc" ? "asc" : "desc";
      state.sort = key; state.offset = 0;
      remember(); refresh();
    };
    return el("th", { "aria-sort": on ? (page.order === "desc" ? "descending" : "ascending") : "none" }, button);
  }));
  document.getElementById("lb-rows").replaceChildren(...page.items.map((r) =>
    el("tr", { "data-run": r.evaluation_run }, ...cols.map(([, , cell]) => el("td", {}, cell(r))))));
  const last = Math.min(state.offset + PAGE, page.total);
  document.getElementById("lb-info").textContent =
    page.total ? `${state.offset + 1}–${last} of ${page.total}` : "no succeeded evaluations yet";
  document.getElementById("lb-prev").disabled = state.offset === 0;
  document.getElementById("lb-next").disabled = last >= page.total;
  const custom = page.items.some((r) => r.autoattack_linf_version === "custom" || r.autoattack_l2_version === "custom");
  document.getElementById("lb-note").textContent = "Accuracies in %. – : not measured, or measured at another ε. Rows without the "
    + "sorted score come last." + (custom ? " * a reduced (custom) AutoAttack: fewer steps or queries than the "
    + "standard version, not comparable with RobustBench's numbers." : "")
    + (page.items.some((r) => r.corruptions_source === "published") ? " ᵖ on the published CIFAR-C files; "
      + "otherwise generated here with CIFAR-10-C's parameters." : "");
}

withLogin(async () => {
  document.getElementById("leaderboard").hidden = false;
  const params = new URLSearchParams(location.search);
  state.sort = params.get("sort") || state.sort;
  state.order = params.get("order") || state.order;
  state.offset = Number(params.get("offset")) || 0;
  const form = document.getElementById("lb-filters");
  for (const name of FILTERS) if (params.get(name)) form.elements[name].value = params.get(name);
  form.addEventListener("change", () => { state.offset = 0; remember(); refresh(); });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); state.offset = 0; remember(); refresh(); });
  document.getElementById("lb-prev").onclick = () => { state.offset = Math.max(0, state.offset - PAGE); remember(); refresh(); };
  document.getElementById("lb-next").onclick = () => { state.offset += PAGE; remember(); refresh(); };
  await refresh();
});

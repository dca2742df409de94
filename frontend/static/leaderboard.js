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

// how a cell shows its column's value, per kind of column (the columns, their headers
// and which sort come from the server: page.layout, ml/evaluate/record.py's LEADERBOARD)
const CELLS = {
  run: (c, r) => el("a", { href: `/runs/${r[c.key]}`, title: r.name || "" }, `#${r[c.key]}`),
  text: (c, r) => r[c.key] ?? "–",
  alpha: (c, r) => (r.target === "none" ? "–" : String(r[c.key])),
  number: (c, r) => fmt(r[c.key], c.digits ?? 3),
  pct: (c, r) => pct(r[c.key]),
  autoattack: (c, r) => {
    const v = r[c.key];
    if (v === null || v === undefined) return "–";
    const custom = r[`${c.key}_version`] === "custom";
    return el("span", custom ? { title: "a reduced (custom) AutoAttack: fewer steps or queries than the standard" } : {},
      pct(v) + (custom ? "*" : ""));
  },
  corruptions: (c, r) => (r.corruptions_source === "published"
    ? el("span", { title: "on the published CIFAR-C files" }, `${pct(r[c.key])} ᵖ`)
    : pct(r[c.key])),
  network: (c, r) => [(r[c.key] || "").replace(/ \(width (\d+)\)/, " w$1"), el("span", { class: "sub" }, r.dataset ?? "–")],
  study: (c, r) => (r[c.key] ? el("a", { href: `/studies/${r[c.key]}` }, `#${r[c.key]}`) : "–"),
  // the attacks' soundness: a suspect row's robustness may be the attacks' failure (a
  // masked gradient, …); its warnings in the hover
  soundness: (c, r) => {
    const v = r[c.key];
    if (!v) return "–";
    const suspect = v === "suspect";
    return el("span", { class: `soundness ${v}`, title: suspect ? r.soundness_warnings.join("\n")
      : "no warning sign from the checks that ran (attack agreement, HopSkipJump, transfer, AutoAttack)" },
    suspect ? `⚠ suspect ${r.soundness_suspect.join(", ")}` : "✓ sound");
  },
};

// How many samples a cell's number is over (the column's count field; null when the
// column has none or the row no number there), and the most any number of the row is over
const has = (v) => v !== null && v !== undefined;
const countOf = (c, r) => (c.count && has(r[c.key]) && has(r[c.count]) ? r[c.count] : null);
const mostOf = (layout, r) => Math.max(0, ...layout.map((c) => countOf(c, r) ?? 0));

// each row's record, as a JSON file: the last column, which the page adds itself
function download(r) {
  const a = el("a", { href: `/api/runs/${r.evaluation_run}/record?download=true`, class: "download" }, "JSON");
  a.onclick = async (ev) => {  // the token goes in a header: fetch, then save the blob
    ev.preventDefault();
    const blob = await (await api(`/api/runs/${r.evaluation_run}/record`)).blob();
    const url = URL.createObjectURL(blob);
    el("a", { href: url, download: `neuroreg-record-${r.evaluation_run}.json` }).click();
    URL.revokeObjectURL(url);
  };
  return a;
}

// [column key (null: not sortable), header, hover title, cell] per column shown; a cell
// is its content with its sample count under it, small, stronger where fewer than the
// row's most (AutoAttack on 10 samples beside a clean accuracy on the whole test split)
function columns(layout) {
  const shown = layout.filter((c) => c.page);
  return [
    ...shown.map((c) => [c.sortable ? c.key : null, c.header, c.title, (r) => {
      const content = [(CELLS[c.kind] || CELLS.text)(c, r)].flat();
      const n = countOf(c, r);
      if (n === null) return el("td", {}, ...content);
      return el("td", { title: `${c.header}: over ${n} samples` }, ...content,
        el("span", { class: n < mostOf(shown, r) ? "n reduced" : "n" }, `n=${n}`));
    }]),
    [null, "record", "the evaluation's record (RobustBench's fields and ours) as JSON", (r) => el("td", {}, download(r))],
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

let latest = 0;  // a change and a submit (Enter) both ask; only the newest answer is drawn

async function refresh() {
  const error = document.getElementById("lb-error");
  const request = ++latest;
  let page;
  try {
    page = await getJSON(`/api/leaderboard?${query()}`);
  } catch (err) {
    if (request === latest) error.textContent = err.message;  // a 422 names the field (an ε outside (0, 1], …)
    return;
  }
  if (request !== latest) return;
  error.textContent = "";
  const cols = columns(page.layout);
  document.getElementById("lb-head").replaceChildren(...cols.map(([key, header, title]) => {
    if (!key) return el("th", { title }, header);
    const on = key === page.sort;
    const button = el("button", { type: "button", class: "sort", "data-key": key, title: `${title}; sort by it` },
      header, on ? (page.order === "desc" ? "\u00a0▼" : "\u00a0▲") : "");  // the arrow stays by its header
    button.onclick = () => {
      state.order = on && state.order === "desc" ? "asc" : "desc";
      state.sort = key; state.offset = 0;
      remember(); refresh();
    };
    return el("th", { "aria-sort": on ? (page.order === "desc" ? "descending" : "ascending") : "none" }, button);
  }));
  document.getElementById("lb-rows").replaceChildren(...page.items.map((r) =>
    el("tr", { "data-run": r.evaluation_run }, ...cols.map(([, , , cell]) => cell(r)))));
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
      + "otherwise generated here with CIFAR-10-C's parameters." : "")
    + " n= under a number: how many samples it is over (in colour where fewer than the row's most)."
    + (page.items.some((r) => r.soundness === "suspect") ? " ⚠ suspect: the attacks' soundness check warned — "
      + "the row's robustness may be the attacks' failure (a masked gradient); hover for why, or see the run's page." : "");
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

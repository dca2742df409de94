// Submit any kind of run with a form built from the API's own schema (GET /openapi.json):
// one input per config field (enums as selects, numbers with their bounds, nested objects
// and lists as JSON), validated by the server, whose 422 messages appear next to each field.
import { detailOf, el, getJSON, myProjects, send, withLogin } from "./api.js";

let KINDS = {};  // kind → the schema of its config: from GET /api/kinds, never listed here
let INFO = {};  // kind → its GET /api/kinds entry (reads, presets)
let schemas = {};
const PRESETS = { paper: "the paper's setting (hours on a GPU)", cpu: "CPU-sized (minutes)" };

// A study's runs: None once per seed, every other condition once per α and seed; each
// train is evaluated once
function studyRuns(config) {
  const seeds = config.seeds ?? 5;
  const alphas = (config.alphas || [20]).length;
  const trains = (config.conditions || []).reduce((n, c) => n + (c === "none" ? seeds : alphas * seeds), 0);
  return { trains, evaluations: trains };
}

// a preset's label, a study's with its number of runs (a CPU-sized study is many runs of
// minutes each, not minutes in all)
function presetLabel(kind, name, values) {
  if (kind === "study" && name === "cpu" && values.conditions) {
    const { trains, evaluations } = studyRuns(values);
    return `CPU-sized: ${trains} trains and ${evaluations} evaluations, minutes each on a CPU`;
  }
  return PRESETS[name] || name;
}

// every default of a nested config (a dataclass field with a default_factory has none of
// its own in the schema): its properties' defaults, nested ones too
function defaultsOf(p) {
  if (!p || !p.properties) return undefined;
  const out = {};
  for (const [k, prop] of Object.entries(p.properties)) {
    const r = resolve(prop);  // an optional setting without a default: none (null)
    const d = prop.default !== undefined ? prop.default : r.nullable ? null : defaultsOf(r);
    if (d !== undefined) out[k] = d;
  }
  return out;
}

function resolve(prop) {
  if (prop.$ref) return schemas[prop.$ref.split("/").pop()];
  const alt = (prop.anyOf || []).find((p) => p.type !== "null");
  return alt ? { ...resolve(alt), nullable: true, default: prop.default } : prop;
}

function input(name, prop) {
  const p = resolve(prop);
  const id = `f-${name}`;
  const dflt = prop.default !== undefined ? prop.default : p.default;
  let node;
  if (p.enum) {
    node = el("select", { id, name }, ...p.enum.map((v) => el("option", { value: v }, v)));
    if (dflt !== undefined) node.value = dflt;
  } else if (p.type === "boolean") {
    node = el("select", { id, name, "data-type": "boolean" },
      el("option", { value: "true" }, "true"), el("option", { value: "false" }, "false"));
    node.value = String(dflt);
  } else if (p.type === "integer" || p.type === "number") {
    node = el("input", { id, name, type: "number", step: p.type === "integer" ? "1" : "any",
      "data-type": p.type, ...(p.minimum !== undefined ? { min: p.minimum } : {}),
      ...(p.maximum !== undefined ? { max: p.maximum } : {}) });
    if (dflt !== undefined && dflt !== null) node.value = dflt;
  } else if (p.type === "string") {
    node = el("input", { id, name, type: "text", size: 40 });
    if (dflt) node.value = dflt;
  } else {  // objects, lists, nullable compounds: JSON
    node = el("textarea", { id, name, rows: p.type === "object" || p.properties ? 4 : 1,
      "data-type": "json" });
    node.value = dflt === undefined ? "" : JSON.stringify(dflt, null, p.properties ? 1 : 0);
    const nested = dflt === undefined && !p.nullable ? defaultsOf(p) : undefined;
    if (nested) {  // left empty it takes these: said in the field, not a blank box
      node.placeholder = JSON.stringify(nested, null, 1);
      node.rows = Math.min(12, Object.keys(nested).length + 2);
    }
  }
  if (prop.nullable || p.nullable) node.dataset.nullable = "1";
  return node;
}

function readValue(node) {
  const v = node.value.trim();
  if (v === "" && node.dataset.nullable) return null;
  switch (node.dataset.type) {
    case "integer": return v === "" ? undefined : parseInt(v, 10);
    case "number": return v === "" ? undefined : Number(v);
    case "boolean": return v === "true";
    case "json": if (v === "") return undefined;
      try { return JSON.parse(v); } catch { throw new Error(`${node.name}: not valid JSON`); }
    default: return v;
  }
}

// a field that names another run: a picker of the succeeded runs of the kind it takes
async function picker(name, prop, kind) {
  const runs = (await getJSON(`/api/runs?kind=${kind}&status=succeeded&limit=200`)).items;
  const node = el("select", { id: `f-${name}`, name, "data-type": "integer", "data-nullable": "1" },
    el("option", { value: "" }, runs.length ? `– pick a succeeded ${kind} run –`
      : `– no succeeded ${kind} run yet –`),
    ...runs.map((r) => el("option", { value: r.id }, `#${r.id} ${r.name || "(no name)"}`)));
  node.dataset.nullable = "1";
  if (prop.default !== undefined && prop.default !== null) node.value = prop.default;
  return node;
}

async function buildForm(kind, preset) {
  const schema = schemas[KINDS[kind]];
  const values = (INFO[kind].presets || {})[preset] || {};
  const fields = el("div", { class: "form-grid", id: "config-fields" });
  for (const [name, prop] of Object.entries(schema.properties)) {
    const seeded = name in values ? { ...prop, default: values[name] } : prop;
    const reads = INFO[kind].reads && INFO[kind].reads[name];
    const node = reads ? await picker(name, seeded, reads) : input(name, seeded);
    const help = prop.description || resolve(prop).description;
    fields.append(el("label", { for: `f-${name}` }, name),
      el("div", { class: "field" }, node, ...(help ? [el("div", { class: "hint", id: `help-${name}` }, help)] : [])),
      el("div", { class: "field-error", id: `err-${name}`, role: "alert" }));
    if (help) node.setAttribute("aria-describedby", `help-${name}`);
  }
  return fields;
}

// How long a run of this setting takes here, from what this service's workers measured:
// the newest succeeded run of the kind with the same setting, scaled by its size — a train
// by epochs (same dataset, backbone and width), an evaluation by samples (same attacks
// and norms), a similarity run as it took (same source and simulation); a study, its
// trains and evaluations one after another. null: no such run yet.
const SAME = { train: ["dataset", "backbone", "width"], evaluate: ["attacks", "norms"],
  similarity: ["source", "simulation", "recording"] };
const SCALE = { train: "epochs", evaluate: "n_samples" };
const duration = (t) => (t < 90 ? `${Math.round(t)} s` : t < 5400 ? `${Math.round(t / 60)} min` : `${(t / 3600).toFixed(1)} h`);
const seconds = (r) => (new Date(r.finished_at) - new Date(r.started_at)) / 1000;

async function measured(kind, config) {
  const runs = (await getJSON(`/api/runs?kind=${kind}&status=succeeded&limit=200`)).items;
  const same = runs.find((r) => SAME[kind].every((k) => JSON.stringify(r.config[k] ?? null)
    === JSON.stringify(config[k] ?? null)) && r.started_at && r.finished_at);
  if (!same) return null;
  const by = SCALE[kind];
  return { run: same, seconds: seconds(same) * (by ? (config[by] || 1) / (same.config[by] || 1) : 1) };
}

async function estimate(kind, config) {
  if (kind === "study") {
    const { trains, evaluations } = studyRuns(config);
    const [t, e] = await Promise.all([measured("train", config.train || {}),
      measured("evaluate", config.evaluate || {})]);
    const runs = `${trains} trains and ${evaluations} evaluations`;
    if (!t || !e) {
      return `${runs}; no finished ${t ? "evaluation" : "train"} of this setting yet to estimate their time from.`;
    }
    return `${runs}: about ${duration(trains * t.seconds + evaluations * e.seconds)} on one worker, from runs `
      + `#${t.run.id} and #${e.run.id} (a train ${duration(t.seconds)}, an evaluation ${duration(e.seconds)}).`;
  }
  if (!SAME[kind]) return "No time estimate for this kind of run.";
  const m = await measured(kind, config);
  const what = { train: "this dataset, backbone and width", evaluate: "these attacks and norms",
    similarity: "this source" }[kind];
  if (!m) return `No finished ${kind} run of ${what} yet to estimate its time from.`;
  const by = SCALE[kind];
  return `About ${duration(m.seconds)} on this service's workers, from run #${m.run.id}`
    + (by ? ` (${m.run.config[by]} ${by === "epochs" ? "epochs" : "samples"} in ${Math.round(seconds(m.run))} s).`
      : ` (${Math.round(seconds(m.run))} s).`);
}

// one file of POST /api/recordings/inspect, as text
function describe(f) {
  const lines = [`${f.path} (${f.format})`];
  if (f.format === "nwb") {
    lines.push(`responses: ${f.responses} (${f.neurons} ROIs)${f.negative_responses ? ", negative somewhere (dF/F: a Gaussian fit)" : ""}`,
      `presentations: ${f.presentations}, ${f.presentations_total}`);
    for (const [key, what] of [["blank_dropped", "blank (frame < 0)"], ["tier_dropped", "outside the tiers"],
      ["gap_dropped", "a gap in behaviour"], ["gap_filled", "behaviour interpolated across a gap (kept)"]]) {
      if (f[key]) lines.push(`  ${key.endsWith("filled") ? "filled" : "dropped"} ${f[key]}: ${what}`);
    }
    lines.push(`stimuli: ${f.template}`,
      ...Object.entries(f.behavior).map(([q, where]) => `${q}: ${where || "missing (zeros)"}`));
  } else {
    lines.push(`scan ${f.scan}: ${f.neurons} neurons`);
  }
  const r = f.repeats;
  lines.push(`→ ${f.trials} trials of ${f.images} images (${Object.entries(f.tiers).map(([t, n]) => `${t} ${n}`).join(", ")}); `
    + `${r.oracle_images} oracle images repeated ${r.min === r.max ? r.min : `${r.min}–${r.max}`}×`);
  return lines.join("\n");
}

function showErrors(detail) {
  document.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
  const general = [];
  for (const e of Array.isArray(detail) ? detail : [{ loc: [], msg: String(detail) }]) {
    const loc = e.loc || [];
    const field = loc[0] === "body" && loc[1] === "config" ? loc[2] : loc[0] === "body" ? loc[1] : null;
    const rest = loc.slice(loc[1] === "config" ? 3 : 2).join(".");
    const box = field && document.getElementById(`err-${field}`);
    if (box) box.textContent += (rest ? `${rest}: ` : "") + e.msg + " ";
    else general.push(loc.length > 1 ? `${loc.slice(1).join(".")}: ${e.msg}` : e.msg);
  }
  document.getElementById("submit-error").textContent = general.join("\n");
  // beside the Submit button: how many fields to change, which (a click goes to each)
  const marked = [...document.querySelectorAll(".field-error")].filter((e) => e.textContent);
  const summary = document.getElementById("submit-summary");
  summary.replaceChildren(...(marked.length ? [`${marked.length} field${marked.length === 1 ? "" : "s"} to change: `,
    ...marked.flatMap((e, i) => { const f = e.id.slice(4);
      return [i ? ", " : "", el("a", { href: `#f-${f}` }, f)]; })] : []));
}

withLogin(async () => {
  const [openapi, kinds, projects] = await Promise.all([getJSON("/openapi.json"),
    getJSON("/api/kinds"), myProjects()]);
  schemas = openapi.components.schemas;
  KINDS = Object.fromEntries(kinds.map((k) => [k.name, k.config_schema]));
  INFO = Object.fromEntries(kinds.map((k) => [k.name, k]));
  const page = document.getElementById("page");
  page.hidden = false;
  const params = new URLSearchParams(location.search);
  const kind = el("select", { id: "kind", name: "kind" },
    ...Object.keys(KINDS).map((k) => el("option", { value: k }, k)));
  kind.value = KINDS[params.get("kind")] ? params.get("kind") : kinds[0].name;
  const name = el("input", { id: "run-name", name: "name", size: 40 });
  // the projects one may submit into (an editor's or an owner's); "default" first if one may
  const open = projects.filter((p) => p.role === "editor" || p.role === "owner");
  const project = el("select", { id: "run-project", name: "project" },
    ...(open.length ? open.map((p) => el("option", { value: p.name }, p.description ? `${p.name} — ${p.description}` : p.name))
      : [el("option", { value: "" }, "– no project you may submit runs into –")]));
  const wantedProject = params.get("project");
  project.value = open.some((p) => p.name === wantedProject) ? wantedProject
    : open.some((p) => p.name === "default") ? "default" : (open[0] || { name: "" }).name;
  const tags = el("input", { id: "run-tags", name: "tags", size: 40, placeholder: "fig4, cpu" });
  const holder = el("div", {});
  const preset = el("select", { id: "preset", name: "preset" });
  const estimateNote = el("p", { class: "hint", id: "estimate" });
  // the defaults are the paper's (a GPU's hours): said where one picks them
  const presetNote = el("div", { class: "hint", id: "preset-note" });
  const form = el("form", { id: "submit-form", novalidate: "" },  // the API validates
    el("div", { class: "form-grid" },
      el("label", { for: "kind" }, "kind"), kind, el("div", { class: "field-error", id: "err-kind" }),
      el("label", { for: "run-project" }, "project"), el("div", { class: "field" }, project,
        ...(open.length ? [] : [el("div", { class: "hint" }, "You view your projects only: ask a project's owner to make you its editor.")])),
      el("div", { class: "field-error", id: "err-project" }),
      el("label", { for: "run-name" }, "name"), name, el("div", { class: "field-error", id: "err-name" }),
      el("label", { for: "run-tags" }, "tags"), tags, el("div", { class: "field-error", id: "err-tags" }),
      el("label", { for: "preset" }, "start from"), el("div", { class: "field" }, preset, presetNote), el("div", {})),
    estimateNote,
    el("h2", {}, "config"), el("p", { class: "hint" },
      "Defaults are the paper's where it states them; lists and nested settings are JSON."),
    holder, el("p", {}, el("button", { type: "submit", id: "submit" }, "Submit run"), " ",
      el("span", { class: "field-error", id: "submit-summary", role: "status" })),
    el("pre", { class: "error", id: "submit-error", role: "alert" }));
  page.replaceChildren(el("h1", {}, "Submit a run"), form);
  const fillPresets = () => {
    const names = Object.keys(INFO[kind.value].presets || {});
    preset.replaceChildren(el("option", { value: "" }, "the config's defaults"),
      ...names.map((n) => el("option", { value: n }, presetLabel(kind.value, n, INFO[kind.value].presets[n]))));
    preset.value = names.includes(params.get("preset")) ? params.get("preset") : "";
  };
  // the config, or every field that cannot be read (each named), all at once
  const readConfig = () => {
    const config = {};
    const bad = [];
    for (const node of holder.querySelectorAll("input, select, textarea")) {
      try {
        const v = readValue(node);
        if (v !== undefined) config[node.name] = v;
      } catch (err) { bad.push({ loc: ["body", "config", node.name], msg: err.message }); }
    }
    if (bad.length) throw Object.assign(new Error("unreadable fields"), { detail: bad });
    return config;
  };
  const showEstimate = async () => {
    try { estimateNote.textContent = await estimate(kind.value, readConfig()); } catch { estimateNote.textContent = ""; }
  };
  // a similarity run's recording: what the importer would take from it, before submitting
  const addInspect = () => {
    const field = document.getElementById("f-recording");
    if (!field || kind.value !== "similarity") return;
    const out = el("pre", { class: "inspect", id: "inspect-result", "aria-live": "polite" });
    const button = el("button", { type: "button", id: "inspect" }, "Inspect the recording");
    button.onclick = async () => {
      let importer;
      try { importer = readValue(document.getElementById("f-importer")) || {}; } catch (err) {
        out.textContent = err.message; return;
      }
      out.textContent = "reading…";
      const res = await send("POST", "/api/recordings/inspect", { recording: field.value, importer });
      if (!res.ok) {
        const d = res.body && res.body.detail;
        out.textContent = Array.isArray(d) ? d.map((e) => `${e.loc.slice(1).join(".")}: ${e.msg}`).join("\n") : String(d);
        return;
      }
      out.textContent = res.body.files.map(describe).join("\n\n");
    };
    field.parentElement.append(el("p", {}, button), out);
  };
  const rebuild = async () => {
    const cpu = (INFO[kind.value].presets || {}).cpu;
    presetNote.textContent = !preset.value && cpu ? "The config's defaults are the paper's setting: "
      + "hours on a GPU. On a CPU, start from the CPU-sized preset." : "";
    holder.replaceChildren(await buildForm(kind.value, preset.value));
    addInspect();
    history.replaceState(null, "", `/submit?kind=${kind.value}${preset.value ? `&preset=${preset.value}` : ""}`);
    await showEstimate();
  };
  kind.addEventListener("change", () => { fillPresets(); rebuild(); });
  preset.addEventListener("change", rebuild);
  holder.addEventListener("change", showEstimate);
  fillPresets();
  await rebuild();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let config;
    try {
      config = readConfig();
    } catch (err) { showErrors(err.detail); return; }
    const res = await send("POST", "/api/runs", { kind: kind.value, name: name.value, config,
      ...(project.value ? { project: project.value } : {}) });
    if (!res.ok) {  // fields refused: beside each; anything else: its status and reason
      const detail = res.body && res.body.detail;
      showErrors(Array.isArray(detail) ? detail : [{ loc: [], msg: `HTTP ${res.status} — ${detailOf(res.body, res.status)}` }]);
      return;
    }
    const wanted = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (wanted.length) {
      const t = await send("PATCH", `/api/runs/${res.body.id}`, { tags: wanted });
      if (!t.ok) { showErrors(t.body.detail.map((e) => ({ ...e, loc: ["body", "tags"] }))); return; }
    }
    location.href = kind.value === "study" ? `/studies/${res.body.id}` : `/runs/${res.body.id}`;
  });
});

// Submit any kind of run with a form built from the API's own schema (GET /openapi.json):
// one input per config field (enums as selects, numbers with their bounds, nested objects
// and lists as JSON), validated by the server, whose 422 messages appear next to each field.
import { el, getJSON, send, withLogin } from "./api.js";

let KINDS = {};  // kind → the schema of its config: from GET /api/kinds, never listed here
let schemas = {};

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

function buildForm(kind) {
  const schema = schemas[KINDS[kind]];
  const fields = el("div", { class: "form-grid", id: "config-fields" });
  for (const [name, prop] of Object.entries(schema.properties)) {
    fields.append(el("label", { for: `f-${name}` }, name), input(name, prop),
      el("div", { class: "field-error", id: `err-${name}`, role: "alert" }));
  }
  return fields;
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
    else general.push(`${loc.slice(1).join(".")}: ${e.msg}`);
  }
  document.getElementById("submit-error").textContent = general.join("\n");
}

withLogin(async () => {
  const [openapi, kinds] = await Promise.all([fetch("/openapi.json").then((r) => r.json()),
    getJSON("/api/kinds")]);
  schemas = openapi.components.schemas;
  KINDS = Object.fromEntries(kinds.map((k) => [k.name, k.config_schema]));
  const page = document.getElementById("page");
  page.hidden = false;
  const params = new URLSearchParams(location.search);
  const kind = el("select", { id: "kind", name: "kind" },
    ...Object.keys(KINDS).map((k) => el("option", { value: k }, k)));
  kind.value = KINDS[params.get("kind")] ? params.get("kind") : kinds[0].name;
  const name = el("input", { id: "run-name", name: "name", size: 40 });
  const tags = el("input", { id: "run-tags", name: "tags", size: 40, placeholder: "fig4, cpu" });
  const holder = el("div", {});
  const form = el("form", { id: "submit-form", novalidate: "" },  // the API validates
    el("div", { class: "form-grid" },
      el("label", { for: "kind" }, "kind"), kind, el("div", { class: "field-error", id: "err-kind" }),
      el("label", { for: "run-name" }, "name"), name, el("div", { class: "field-error", id: "err-name" }),
      el("label", { for: "run-tags" }, "tags"), tags, el("div", { class: "field-error", id: "err-tags" })),
    el("h2", {}, "config"), el("p", { class: "hint" },
      "Defaults are the paper's where it states them; lists and nested settings are JSON."),
    holder, el("p", {}, el("button", { type: "submit", id: "submit" }, "Submit run")),
    el("pre", { class: "error", id: "submit-error", role: "alert" }));
  page.replaceChildren(el("h1", {}, "Submit a run"), form);
  const rebuild = () => {
    holder.replaceChildren(buildForm(kind.value));
    history.replaceState(null, "", `/submit?kind=${kind.value}`);
  };
  kind.addEventListener("change", rebuild);
  rebuild();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const config = {};
    try {
      for (const node of holder.querySelectorAll("input, select, textarea")) {
        const v = readValue(node);
        if (v !== undefined) config[node.name] = v;
      }
    } catch (err) { showErrors([{ loc: ["body", "config", err.message.split(":")[0]], msg: err.message }]); return; }
    const res = await send("POST", "/api/runs", { kind: kind.value, name: name.value, config });
    if (!res.ok) { showErrors(res.body && res.body.detail); return; }
    const wanted = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (wanted.length) {
      const t = await send("PATCH", `/api/runs/${res.body.id}`, { tags: wanted });
      if (!t.ok) { showErrors(t.body.detail.map((e) => ({ ...e, loc: ["body", "tags"] }))); return; }
    }
    location.href = kind.value === "study" ? `/studies/${res.body.id}` : `/runs/${res.body.id}`;
  });
});

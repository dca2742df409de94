// The storage page: the lab's retention policies (GET /api/retention/policies) and their
// dry run (GET /api/retention/plan: what applying them now would delete and free, what
// they keep because another run reads it, and who reads it). An admin also adds a policy
// (its dry run first, if they like: POST /api/retention/preview), deletes one, and applies
// them all now after a confirmation; a member sees the lists and the dry run only. The API
// decides: a refusal is said next to what was refused, naming the field or the run.
import { el, getJSON, send, whoami, withLogin } from "./api.js";

const FIELDS = ["name", "rule", "pattern", "query", "keep", "days"];
const $ = (id) => document.getElementById(id);

// a refused request's reason, one line per field ("keep: a number of artifacts ≥ 1")
const reason = (res) => (Array.isArray(res.body?.detail)
  ? res.body.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("\n")
  : String(res.body?.detail ?? `HTTP ${res.status}`));

// an action's answer under its table: the refusal with its status, or nothing
function said(id, res) {
  $(id).textContent = res.ok ? "" : `HTTP ${res.status} — ${reason(res)}`;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  const [size, unit] = n < 1024 ** 2 ? [n / 1024, "KiB"] : n < 1024 ** 3 ? [n / 1024 ** 2, "MiB"] : [n / 1024 ** 3, "GiB"];
  return `${size.toFixed(size < 10 ? 2 : 1)} ${unit}`;
}

const plural = (n, one, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`;
const runLink = (id, name) => el("a", { href: `/runs/${id}`, class: "run-name", title: name || "" },
  `#${id}${name ? ` ${name}` : ""}`);

// what a policy deletes, in words: "all but the newest 2 of each run"
function ruleText(p) {
  const days = p.days ? `${p.days} day${p.days === 1 ? "" : "s"} after` : "once";
  if (p.rule === "keep-last") return `all but the newest ${p.keep} of each run`;
  if (p.rule === "drop-finished") return `of succeeded runs, ${days} they finished`;
  return `of failed or cancelled runs, ${days} they ended`;
}

let admin = false;

async function drawPolicies() {
  const policies = await getJSON("/api/retention/policies");
  const rows = policies.map((p) => {
    const del = el("button", { type: "button", "aria-label": `delete policy ${p.name}` }, "Delete");
    del.onclick = async () => {
      const res = await send("DELETE", `/api/retention/policies/${p.id}`);
      said("policies-error", res);
      await Promise.all([drawPolicies(), drawPlan()]);
    };
    return el("tr", { "data-policy": p.id }, el("td", {}, p.name),
      el("td", {}, el("code", {}, p.rule), el("span", { class: "sub" }, ruleText(p))),
      el("td", {}, el("code", {}, p.pattern)),
      el("td", {}, p.query ? el("code", {}, p.query) : el("span", { class: "meta" }, "every run")),
      el("td", {}, p.rule === "keep-last" ? `keep ${p.keep}` : `${p.days ?? 0} day${p.days === 1 ? "" : "s"}`),
      ...(admin ? [el("td", {}, del)] : []));
  });
  $("policy-rows").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: admin ? 6 : 5, class: "meta" }, "No policies yet: nothing is deleted.")) ]));
}

function itemsTable(id, items, kept) {
  return el("table", { class: "scores", id },
    el("thead", {}, el("tr", {}, ...["run", "artifact", "size", "policy", ...(kept ? ["read by"] : [])]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, ...items.map((i) => el("tr", {},
      el("td", {}, runLink(i.run_id, i.run_name)), el("td", {}, el("code", {}, i.name)),
      el("td", {}, bytes(i.size_bytes)), el("td", {}, i.policy),
      ...(kept ? [el("td", { class: "readers" }, ...i.dependants.flatMap((d, k) => [k ? ", " : "",
        runLink(d.run_id, d.name), ` (${d.kind}, ${d.status})`]))] : [])))));
}

// a plan (the stored policies' dry run, one policy's preview, or what an apply did)
function planParts(plan, idPrefix) {
  const parts = [el("p", { id: `${idPrefix}-summary` }, plan.applied
    ? `Deleted ${plural(plan.delete_count, "artifact")}, ${bytes(plan.bytes_freed)} freed.`
    : plan.delete_count
      ? `Applying now would delete ${plural(plan.delete_count, "artifact")} (${bytes(plan.bytes_freed)}).`
      : "Applying now would delete nothing.",
  plan.kept_count ? ` ${plural(plan.kept_count, "artifact")} the policies cover ${plan.kept_count === 1 ? "is" : "are"} kept: another run reads ${plan.kept_count === 1 ? "it" : "them"}.` : "")];
  if (plan.delete.length) {
    parts.push(el("h3", {}, plan.applied ? "Deleted" : "Would go"), itemsTable(`${idPrefix}-delete`, plan.delete, false));
  }
  if (plan.kept.length) {
    parts.push(el("h3", {}, "Kept: another run reads them"), itemsTable(`${idPrefix}-kept`, plan.kept, true));
  }
  if (plan.truncated) {
    parts.push(el("p", { class: "meta" }, "Truncated: the lists show the first items; the counts and the size count them all."));
  }
  return parts;
}

let lastPlan = null;

async function drawPlan() {
  lastPlan = await getJSON("/api/retention/plan");
  $("plan").replaceChildren(...planParts(lastPlan, "plan"));
  if ($("apply")) $("apply").disabled = lastPlan.delete_count === 0;
}

// the field errors of a 422 by their field, anything else (a 409 naming the run that
// reads what the policy would delete) under the form
function showErrors(res) {
  for (const f of FIELDS) $(`err-${f}`).textContent = "";
  $("policy-error").textContent = "";
  if (res.ok) return;
  const detail = res.body?.detail;
  const general = [];
  for (const e of Array.isArray(detail) ? detail : []) {
    const field = (e.loc || [])[0] === "body" ? e.loc[1] : null;
    if (FIELDS.includes(field)) $(`err-${field}`).textContent += `${e.msg} `;
    else general.push(`${(e.loc || []).slice(1).join(".")}: ${e.msg}`);
  }
  if (!Array.isArray(detail)) general.push(reason(res));
  $("policy-error").textContent = general.length ? `HTTP ${res.status} — ${general.join("\n")}` : "";
}

function policyForm(schema) {
  const props = schema.properties;
  const input = (name, attrs = {}) => el("input", { id: `p-${name}`, name, ...attrs });
  const controls = {
    name: input("name", { required: "", size: 30, placeholder: "checkpoints of finished runs" }),
    rule: el("select", { id: "p-rule", name: "rule" }, ...props.rule.enum.map((r) => el("option", { value: r }, r))),
    pattern: input("pattern", { required: "", size: 30, placeholder: "checkpoint.pt" }),
    query: input("query", { size: 50, placeholder: 'kind = "train" (empty: every run)', spellcheck: "false" }),
    keep: input("keep", { type: "number", min: 1, step: 1, size: 6 }),
    days: input("days", { type: "number", min: 0, step: "any", size: 6 }),
  };
  controls.rule.value = "drop-finished";
  const grid = el("div", { class: "form-grid" }, ...FIELDS.flatMap((f) => [
    el("label", { for: `p-${f}` }, f),
    el("div", { class: "field" }, controls[f], el("div", { class: "hint" }, (props[f].description || "").replaceAll("`", ""))),
    el("div", { class: "field-error", id: `err-${f}`, role: "alert" })]));
  const preview = el("button", { type: "button", id: "policy-preview-button" }, "Dry run of this policy");
  const form = el("form", { id: "policy-form" }, grid,
    el("p", { class: "manage" }, el("button", { id: "policy-add" }, "Add policy"), preview),
    el("p", { class: "error", id: "policy-error", role: "alert" }),
    el("div", { id: "policy-preview" }));
  const body = () => {
    const out = { name: controls.name.value.trim(), rule: controls.rule.value, pattern: controls.pattern.value.trim(),
      query: controls.query.value.trim() };
    for (const f of ["keep", "days"]) if (controls[f].value !== "") out[f] = Number(controls[f].value);
    return out;
  };
  preview.onclick = async () => {
    const res = await send("POST", "/api/retention/preview", body());
    showErrors(res);
    $("policy-preview").replaceChildren(...(res.ok ? [el("h3", {}, "This policy's dry run"), ...planParts(res.body, "preview")] : []));
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await send("POST", "/api/retention/policies", body());
    showErrors(res);
    if (!res.ok) return;
    form.reset();
    controls.rule.value = "drop-finished";
    $("policy-preview").replaceChildren();
    await Promise.all([drawPolicies(), drawPlan()]);
  });
  return form;
}

function applyControls() {
  const dialog = el("dialog", { id: "apply-dialog", "aria-labelledby": "apply-title" },
    el("h2", { id: "apply-title" }, "Apply the policies now?"),
    el("p", { id: "apply-what" }),
    el("p", { class: "manage" }, el("button", { type: "button", id: "apply-confirm", class: "danger" }, "Delete them"),
      el("button", { type: "button", id: "apply-keep" }, "Not now")));
  const apply = el("button", { type: "button", id: "apply", class: "danger" }, "Apply now…");
  apply.onclick = () => {
    $("apply-what").textContent = `${plural(lastPlan.delete_count, "artifact")} (${bytes(lastPlan.bytes_freed)}) are `
      + "deleted for good, files included. What another run reads stays.";
    dialog.showModal();
  };
  dialog.querySelector("#apply-keep").onclick = () => dialog.close();
  dialog.querySelector("#apply-confirm").onclick = async () => {
    dialog.close();
    const res = await send("POST", "/api/retention/apply");
    said("apply-error", res);
    $("apply-result").replaceChildren(...(res.ok ? planParts(res.body, "applied").slice(0, 1) : []));
    await drawPlan();
  };
  return [el("p", { class: "manage" }, apply,
    el("span", { class: "hint" }, "The server also applies them on its own every so often.")),
  dialog, el("p", { class: "error", id: "apply-error", role: "alert" }), el("div", { id: "apply-result" })];
}

withLogin(async () => {
  const [me, openapi] = await Promise.all([whoami(), getJSON("/openapi.json")]);
  admin = me.role === "admin";
  const page = $("page");
  const cols = ["name", "rule", "artifacts", "runs", "keep / days", ...(admin ? [""] : [])];
  page.replaceChildren(el("h1", {}, "Storage"),
    el("p", { class: "hint" }, "Retention policies delete the artifacts nobody needs any more (old checkpoints, "
      + "the files of failed runs). An artifact another run reads — a target a train run used, the model an "
      + "evaluation scored — is never deleted, whatever a policy says."),
    el("h2", {}, "Retention policies"),
    el("table", { id: "policy-table" }, el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, c)))),
      el("tbody", { id: "policy-rows" })),
    el("p", { class: "error", id: "policies-error", role: "alert" }),
    el("h2", {}, "Dry run"),
    el("p", { class: "hint" }, "What applying every policy now would do. Nothing is deleted here."),
    ...(admin ? applyControls() : []),
    el("div", { id: "plan" }),
    ...(admin ? [el("h2", {}, "Add a policy"), policyForm(openapi.components.schemas.RetentionPolicyCreate)] : []));
  page.hidden = false;
  await Promise.all([drawPolicies(), drawPlan()]);
});

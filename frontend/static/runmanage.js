// The run page's header extras: the run's tags (each a link to the runs that share it),
// links to the runs it belongs with (its study, the model it evaluates or the target it
// trains against, the evaluations of it), and for its owner or an admin the controls to
// rename it, add or remove a tag, move it into another project, and delete it (after a
// confirmation). Who may: the run's owner while an editor of its project, the project's
// owners, admins (core/access.py); the API decides (PATCH and DELETE /api/runs/{id}; a run
// not yet finished is refused deletion, a move into a project one only views or of a
// study's run on its own too): a refusal is shown as the server words it.
import { detailOf, el, getJSON, myProjects, send, whoami } from "./api.js";

let run = null;       // the run as last drawn
let allowed = false;  // whether the signed-in user may change it
let redraw = () => {};

const $ = (id) => document.getElementById(id);
const refused = (res) => `HTTP ${res.status} — ${detailOf(res.body, res.status)}`;

async function patch(body) {
  const res = await send("PATCH", `/api/runs/${run.id}`, body);
  if (!res.ok) { $("manage-error").textContent = refused(res); return false; }
  $("manage-error").textContent = "";
  redraw(res.body);
  return true;
}

function tagChip(tag) {
  const chip = el("span", { class: "tag" }, el("a", { href: `/?tag=${encodeURIComponent(tag)}` }, tag));
  if (allowed) {
    const remove = el("button", { type: "button", "aria-label": `remove tag ${tag}`, title: "remove this tag" }, "×");
    remove.onclick = () => patch({ tags: run.tags.filter((t) => t !== tag) });
    chip.append(remove);
  }
  return chip;
}

// The tags, and for whoever may change the run a box to add some (commas or spaces between)
export function drawTags(current) {
  run = current;
  const chips = run.tags.map(tagChip);
  $("run-tag-list").replaceChildren(...(chips.length ? chips
    : [el("span", { class: "meta" }, allowed ? "no tags yet" : "no tags")]));
  $("run-tags").hidden = !allowed && !chips.length;
  if (!$("rename-form").hidden) return;  // the name being typed stays
  $("rename-input").value = run.name;
}

function deleteDialog() {
  const dialog = $("delete-dialog");
  const a = /^[aeiou]/.test(run.kind) ? "an" : "a";
  $("delete-what").textContent = `#${run.id}${run.name ? ` “${run.name}”` : ""}, ${a} ${run.kind} run`
    + ` of ${run.owner},`;
  dialog.showModal();
}

async function remove() {
  $("delete-dialog").close();
  const res = await send("DELETE", `/api/runs/${run.id}`);
  if (!res.ok) { $("manage-error").textContent = refused(res); return; }
  location.assign(`/?deleted=${run.id}`);
}

// Move to project: the projects one may create runs in (an editor's or an owner's); the
// run's own is picked, and Move waits for another
function setUpMove(projects) {
  const open = projects.filter((p) => p.role === "editor" || p.role === "owner");
  if (!open.some((p) => p.id === run.project_id)) open.unshift({ id: run.project_id, name: run.project });
  const select = $("move-project");
  select.replaceChildren(...open.map((p) => el("option", { value: p.name }, p.name)));
  const settle = () => { $("move").disabled = select.value === run.project; };
  select.value = run.project;
  select.onchange = settle;
  settle();
  $("move-form").onsubmit = async (ev) => {
    ev.preventDefault();
    if (await patch({ project: select.value })) select.value = run.project;
    settle();
  };
  $("move-form").hidden = open.length < 2;  // nowhere else to move it
}

// Once, with the run's first answer: who may change it decides which controls show
export async function setUpManage(first, onChange) {
  redraw = onChange;
  run = first;
  const [me, projects] = await Promise.all([whoami(), myProjects().catch(() => [])]);
  const role = (projects.find((p) => p.id === first.project_id) || {}).role;
  allowed = me.role === "admin" || role === "owner" || (role === "editor" && me.name === first.owner);
  $("run-manage").hidden = !allowed;
  if (allowed) setUpMove(projects);
  if (allowed) {
    $("rename").onclick = () => {
      $("rename-form").hidden = false;
      $("rename").hidden = true;
      $("rename-input").value = run.name;
      $("rename-input").focus();
    };
    const close = () => { $("rename-form").hidden = true; $("rename").hidden = false; };
    $("rename-cancel").onclick = close;
    $("rename-form").onsubmit = async (ev) => {
      ev.preventDefault();
      if (await patch({ name: $("rename-input").value.trim() })) close();
    };
    $("tag-form").onsubmit = async (ev) => {
      ev.preventDefault();
      const added = $("tag-input").value.split(/[\s,]+/).filter(Boolean);
      if (!added.length) return;
      if (await patch({ tags: [...new Set([...run.tags, ...added])] })) $("tag-input").value = "";
    };
    $("delete").onclick = deleteDialog;
    $("delete-confirm").onclick = remove;
    $("delete-keep").onclick = () => $("delete-dialog").close();
  }
  $("tag-form").hidden = !allowed;
  $("run").dataset.manage = allowed ? "yes" : "no";  // settled: the controls are as they stay
  drawTags(first);
}

const runLink = (r, id) => el("a", { href: r.kind === "study" ? `/studies/${r.id}` : `/runs/${r.id}`, ...(id ? { id } : {}) },
  `run #${r.id}`);
const named = (r) => (r.name ? ` “${r.name}”` : "");

const READERS = { evaluate: "evaluated by", train: "models trained against it:", similarity: "read by" };

// Where the run belongs: its study (or parent), the run it reads, the runs that read it
export async function drawLinks(current) {
  const [parent, input, readers] = await Promise.all([
    current.parent_id ? getJSON(`/api/runs/${current.parent_id}`).catch(() => null) : null,
    current.input_run_id ? getJSON(`/api/runs/${current.input_run_id}`).catch(() => null) : null,
    getJSON(`/api/runs?${new URLSearchParams({ q: `input = ${current.id}`, order: "oldest", limit: 50 })}`)
      .then((page) => page.items).catch(() => [])]);
  const parts = [];
  if (current.parent_id) {
    const p = parent || { id: current.parent_id, kind: "", name: "" };
    parts.push([p.kind === "study" ? "part of the study " : "part of ",
      el("a", { id: "parent-link", href: p.kind === "study" ? `/studies/${p.id}` : `/runs/${p.id}` },
        p.kind === "study" ? `#${p.id}` : `run #${p.id}`), named(p)]);
  }
  if (current.input_run_id) {
    const i = input || { id: current.input_run_id, kind: "", name: "" };
    const what = current.kind === "evaluate" ? "evaluates the model of "
      : current.kind === "train" ? "trained against the target of " : "reads ";
    parts.push([what, runLink(i, "input-run"), named(i)]);
  }
  const byKind = new Map();
  for (const r of readers) byKind.set(r.kind, [...(byKind.get(r.kind) || []), r]);
  for (const [kind, rs] of byKind) {
    parts.push([`${READERS[kind] || `read by ${kind} runs`} `, ...rs.flatMap((r, n) => [n ? ", " : "",
      el("a", { href: `/runs/${r.id}`, class: "reader" }, `run #${r.id}`), ` (${r.status})`])]);
  }
  const host = $("run-links");
  host.replaceChildren(...parts.flatMap((p, n) => [n ? " · " : "", ...p]));
  host.hidden = !parts.length;
}

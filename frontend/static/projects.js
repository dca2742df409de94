// The projects page: the projects you belong to (every one for an admin) with your role in
// each and its runs; an admin makes one. A project picked (?project=<name>) shows its
// members and their roles, which its owners and admins change, remove and add to. The API
// decides (core/access.py); a refusal is said under its table as the server words it.
import { detailOf, el, getJSON, send, when, whoami, withLogin } from "./api.js";

const ROLES = ["viewer", "editor", "owner"];
const $ = (id) => document.getElementById(id);
let picked = new URLSearchParams(location.search).get("project");  // a project's name
let me = null;

// an action's answer under its table: the refusal with its status, or nothing
function said(id, res) {
  $(id).textContent = res.ok ? "" : `HTTP ${res.status} — ${detailOf(res.body, res.status)}`;
  return res.ok;
}

const runsOf = (name) => `/?${new URLSearchParams({ q: `project = "${name}"` })}`;

function pick(name) {
  picked = name;
  history.replaceState(null, "", name ? `/projects?${new URLSearchParams({ project: name })}` : "/projects");
  return Promise.all([drawProjects(), drawMembers()]);
}

async function drawProjects() {
  const projects = await getJSON("/api/projects");
  $("project-rows").replaceChildren(...projects.map((p) => {
    const open = el("a", { href: `/projects?${new URLSearchParams({ project: p.name })}`, class: "project-name" }, p.name);
    open.onclick = (ev) => { ev.preventDefault(); pick(p.name); };
    return el("tr", { "data-project": p.name, class: p.name === picked ? "picked" : "" },
      el("td", {}, open), el("td", { class: "project-description" }, p.description || "–"),
      el("td", { class: "project-role" }, p.role), el("td", {}, el("a", { href: runsOf(p.name) },
        `${p.runs} run${p.runs === 1 ? "" : "s"}`)), el("td", {}, when(p.created_at)));
  }));
  $("project-none").hidden = projects.length > 0;
}

// a member's row: a role select and Remove for the project's owners, the role otherwise
function memberRow(project, m, manage) {
  const cells = [el("td", {}, m.user, m.user_id === me.id ? el("span", { class: "meta" }, " (you)") : "")];
  if (!manage) return el("tr", { "data-member": m.user }, ...cells, el("td", { class: "member-role" }, m.role), el("td", {}));
  const role = el("select", { "aria-label": `role of ${m.user}`, class: "member-role" },
    ...ROLES.map((r) => el("option", { value: r }, r)));
  role.value = m.role;
  role.onchange = async () => {
    const res = await send("PUT", `/api/projects/${encodeURIComponent(project.name)}/members/${encodeURIComponent(m.user)}`,
      { role: role.value });
    said("members-error", res);
    await Promise.all([drawProjects(), drawMembers({ keepError: true })]);
  };
  const remove = el("button", { type: "button", "aria-label": `remove ${m.user}` }, "Remove");
  remove.onclick = async () => {
    if (m.user_id === me.id && me.role !== "admin"
      && !confirm(`Leave ${project.name}? You will read none of its runs from then on.`)) return;
    const res = await send("DELETE", `/api/projects/${encodeURIComponent(project.name)}/members/${encodeURIComponent(m.user)}`);
    said("members-error", res);
    await Promise.all([drawProjects(), drawMembers({ keepError: true })]);
  };
  return el("tr", { "data-member": m.user }, ...cells, el("td", {}, role), el("td", {}, remove));
}

async function drawMembers({ keepError = false } = {}) {
  const section = $("members");
  if (!keepError) $("members-error").textContent = "";
  if (!picked) { section.hidden = true; return; }
  const res = await send("GET", `/api/projects/${encodeURIComponent(picked)}`);
  section.hidden = false;
  if (!res.ok) {  // not (or no longer) one of yours: said where its members would be
    $("members-title").textContent = `Project ${picked}`;
    $("members-body").hidden = true;
    said("members-error", res);
    return;
  }
  const project = res.body;
  const manage = project.role === "owner";  // an admin is every project's owner
  $("members-title").textContent = `Members of ${project.name}`;
  $("members-note").replaceChildren(`You are its ${project.role}${me.role === "admin" ? " (an admin)" : ""}. `,
    manage ? "A viewer reads its runs; an editor also submits runs into it and changes their own; an owner also changes anyone's and sets its members. There is always at least one owner."
      : "Its owners set its members.",
    ...(manage ? [" ", el("a", { href: `/audit?project=${project.id}`, id: "project-audit" }, "Its audit trail"), "."] : []));
  $("member-rows").replaceChildren(...project.members.map((m) => memberRow(project, m, manage)));
  $("member-form").hidden = !manage;
  $("members-body").hidden = false;
}

function addMemberForm() {
  const name = el("input", { id: "member-name", required: "", size: 20, placeholder: "eve", list: "user-names", autocomplete: "off" });
  const role = el("select", { id: "member-role" }, ...ROLES.map((r) => el("option", { value: r }, r)));
  const form = el("form", { id: "member-form", hidden: "" }, el("label", { for: "member-name" }, "Add member "), name, " ",
    el("label", { for: "member-role" }, "as "), role, " ", el("button", {}, "Add member"),
    el("datalist", { id: "user-names" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = name.value.trim();
    const res = await send("PUT", `/api/projects/${encodeURIComponent(picked)}/members/${encodeURIComponent(user)}`,
      { role: role.value });
    if (said("members-error", res)) { name.value = ""; role.value = "viewer"; }
    await drawMembers({ keepError: true });
  });
  return form;
}

// an admin's: name, description, owners (user names; none: the admin)
function newProjectForm() {
  const name = el("input", { id: "project-name", required: "", size: 20, placeholder: "vision" });
  const description = el("input", { id: "project-description", size: 40, maxlength: 500, placeholder: "what its runs are for" });
  const owners = el("input", { id: "project-owners", size: 24, placeholder: "you", list: "user-names" });
  const form = el("form", { id: "project-form" }, el("label", { for: "project-name" }, "New project "), name, " ",
    el("label", { for: "project-description" }, "description "), description, " ",
    el("label", { for: "project-owners" }, "owners "), owners, " ", el("button", {}, "Make project"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await send("POST", "/api/projects", { name: name.value.trim(), description: description.value.trim(),
      owners: owners.value.split(",").map((o) => o.trim()).filter(Boolean) });
    if (!said("project-error", res)) return;
    name.value = ""; description.value = ""; owners.value = "";
    await pick(res.body.name);
  });
  return [form, el("p", { class: "error", id: "project-error", role: "alert" })];
}

withLogin(async () => {
  me = await whoami();
  const admin = me.role === "admin";
  const page = $("page");
  page.replaceChildren(el("h1", {}, "Projects"),
    el("p", { class: "hint" }, "A project holds runs; its members read them (viewers), also submit runs into it (editors), "
      + "and also change anyone's runs in it and set its members (owners)." + (admin ? " An admin reads and writes every project and makes new ones." : "")),
    ...(admin ? newProjectForm() : []),
    el("table", { id: "project-table" }, el("thead", {}, el("tr", {}, ...["name", "description", "your role", "runs",
      "created"].map((h) => el("th", {}, h)))), el("tbody", { id: "project-rows" })),
    el("p", { class: "meta", id: "project-none", hidden: "" }, "You belong to no project yet: an owner of one adds you."),
    el("section", { id: "members", hidden: "", "aria-labelledby": "members-title" },
      el("h2", { id: "members-title" }), el("div", { id: "members-body" },
        el("p", { class: "hint", id: "members-note" }),
        el("table", { id: "member-table" }, el("thead", {}, el("tr", {}, el("th", {}, "user"), el("th", {}, "role"),
          el("th", {}, ""))), el("tbody", { id: "member-rows" })),
        addMemberForm()),
      el("p", { class: "error", id: "members-error", role: "alert" })));
  page.hidden = false;
  // anyone's name, for the add member box
  getJSON("/api/users").then((users) => $("user-names").replaceChildren(
    ...users.filter((u) => !u.disabled_at).map((u) => el("option", { value: u.name })))).catch(() => {});
  await Promise.all([drawProjects(), drawMembers()]);
});

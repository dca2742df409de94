// The users page (an admin's): the team (add a user, disable or re-enable one, make an
// admin or a member, list and revoke anyone's tokens) and the audit trail, newest first.
// Nothing for a member; the server refuses them these routes anyway.
import { el, getJSON, send, when } from "./api.js";
import { auditLog } from "./auditlog.js";

const reason = (res) => (Array.isArray(res.body?.detail)
  ? res.body.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("\n")
  : String(res.body?.detail ?? `HTTP ${res.status}`));

function button(label, aria, onclick) {
  const b = el("button", { type: "button", "aria-label": aria }, label);
  b.onclick = onclick;
  return b;
}

// a user's tokens, under their row: name (a worker token says so), created, state, Revoke
async function drawTokens(user, cell) {
  const tokens = await getJSON(`/api/users/${user.id}/tokens`);
  const rows = tokens.map((t) => el("li", { "data-token": t.id },
    `${t.name}${t.scope === "worker" ? " (worker token)" : ""} — created ${when(t.created_at)}, `,
    t.revoked_at ? `revoked ${when(t.revoked_at)}` : "active",
    ...(t.revoked_at ? [] : [" ", button("Revoke", `revoke ${user.name}'s token ${t.name}`, async () => {
      const res = await send("DELETE", `/api/tokens/${t.id}`);
      document.getElementById("team-error").textContent = res.ok ? "" : `${user.name}: ${reason(res)}`;
      await drawTokens(user, cell);
      await drawAudit();
    })])));
  cell.replaceChildren(el("ul", { class: "tokens" }, ...(rows.length ? rows : [el("li", {}, "no tokens")])));
}

async function change(user, body, error) {
  const res = await send("PATCH", `/api/users/${user.id}`, body);
  error.textContent = res.ok ? "" : `${user.name}: ${reason(res)}`;
  await Promise.all([drawUsers(), drawAudit()]);
}

async function drawUsers() {
  const [users, me] = await Promise.all([getJSON("/api/users"), getJSON("/api/me")]);
  const error = document.getElementById("team-error");
  const rows = users.flatMap((u) => {
    const tokens = el("td", { colspan: 5, class: "user-tokens" });
    const tokensRow = el("tr", { hidden: "" }, tokens);
    const actions = el("td", {},
      button("Tokens", `tokens of ${u.name}`, async () => {
        tokensRow.hidden = !tokensRow.hidden;
        if (!tokensRow.hidden) await drawTokens(u, tokens);
      }), " ",
      u.disabled_at
        ? button("Enable", `enable ${u.name}`, () => change(u, { disabled: false }, error))
        : button("Disable", `disable ${u.name}`, () => {
          const you = u.id === me.id ? " That is you: this page's token is refused too." : "";
          if (confirm(`Disable ${u.name}? Every token of theirs is refused at once and their queued runs are cancelled.${you}`)) {
            change(u, { disabled: true }, error);
          }
        }), " ",
      button(u.role === "admin" ? "Make member" : "Make admin", `change the role of ${u.name}`,
        () => change(u, { role: u.role === "admin" ? "member" : "admin" }, error)));
    return [el("tr", { "data-user": u.id, class: u.disabled_at ? "disabled" : "" },
      el("td", {}, u.name), el("td", {}, u.role),
      el("td", {}, u.disabled_at ? `disabled ${when(u.disabled_at)}` : "enabled"),
      el("td", {}, u.id === me.id ? "you" : ""), actions), tokensRow];
  });
  document.getElementById("user-rows").replaceChildren(...rows);
}

// the audit trail (auditlog.js), made with the page's sections
let audit = null;
const drawAudit = () => audit.draw();

function addUserForm() {
  const name = el("input", { id: "user-name", required: "", size: 20, placeholder: "eve" });
  const admin = el("input", { type: "checkbox", id: "user-admin" });
  const shown = el("div", { id: "new-user" });
  const form = el("form", { id: "user-form" }, el("label", { for: "user-name" }, "New user "), name, " ",
    admin, el("label", { for: "user-admin" }, "admin"), " ", el("button", {}, "Add user"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await send("POST", "/api/users", { name: name.value.trim(), role: admin.checked ? "admin" : "member" });
    if (!res.ok) { shown.replaceChildren(el("p", { class: "error" }, reason(res))); return; }
    shown.replaceChildren(el("p", {}, `${res.body.name}'s first token — give it to them now, it will not be shown again:`),
      el("p", { class: "secret", id: "new-user-token" }, res.body.token));
    name.value = ""; admin.checked = false;
    await Promise.all([drawUsers(), drawAudit()]);
  });
  return [form, shown];
}

// The admin's sections ([] for a member), drawn once they are in the page.
export async function teamSection() {
  const me = await getJSON("/api/me");
  if (me.role !== "admin") return [];
  audit = auditLog({ projects: await getJSON("/api/projects"), all: "every event" });
  const sections = [
    el("p", { class: "hint" }, "A disabled user's every token is refused at once and their queued runs are cancelled; running runs finish and keep their results. There is always at least one enabled admin."),
    ...addUserForm(),
    el("p", { class: "error", id: "team-error" }),
    el("table", { id: "user-table" }, el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "role"),
      el("th", {}, "state"), el("th", {}, ""), el("th", {}, ""))), el("tbody", { id: "user-rows" })),
    el("h2", {}, "Audit trail"),
    el("p", { class: "hint" }, "Who did what to whom, newest first: users added, disabled, re-enabled and re-roled, tokens issued and revoked, projects made and their members set, runs created, changed, moved, cancelled and deleted. A project's owners read its events on the ",
      el("a", { href: "/audit" }, "audit page"), "."),
    ...audit.nodes,
  ];
  return sections;
}

export const drawTeam = () => Promise.all([drawUsers(), drawAudit()]);

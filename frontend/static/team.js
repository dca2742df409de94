// The users page (an admin's): the team (add a user, disable or re-enable one, make an
// admin or a member, list and revoke anyone's tokens) and the audit trail, newest first.
// Nothing for a member; the server refuses them these routes anyway.
import { el, getJSON, send, when } from "./api.js";

const reason = (res) => (Array.isArray(res.body?.detail)
  ? res.body.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("\n")
  : String(res.body?.detail ?? `HTTP ${res.status}`));

const PAGE = 25;  // audit events per page

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

// one event in words: "token 7 (laptop of eve)", "user 3 (eve) · before member, after admin"
function target(e) {
  const d = e.detail || {};
  const name = e.target_kind === "token" ? `${d.name} of ${d.user}` : d.name;
  const extra = Object.entries(d).filter(([k]) => !["name", "user", "user_id"].includes(k))
    .map(([k, v]) => (typeof v === "number" ? `${v} ${k.replaceAll("_", " ")}` : `${k.replaceAll("_", " ")} ${v}`));
  return `${e.target_kind} ${e.target_id ?? ""}${name ? ` (${name})` : ""}${extra.length ? ` · ${extra.join(", ")}` : ""}`;
}

let before = null;  // the audit page shown starts before this event id (null: the newest)
const older = [];   // the pages before it, for Newer

async function drawAudit() {
  const query = `limit=${PAGE}${before ? `&before=${before}` : ""}`;
  const events = await getJSON(`/api/audit?${query}`);
  document.getElementById("audit-rows").replaceChildren(...events.map((e) => el("tr", {},
    el("td", {}, when(e.at)), el("td", {}, e.actor_name || "(the service)"),
    el("td", {}, e.action), el("td", {}, target(e)))));
  document.getElementById("audit-older").disabled = events.length < PAGE;
  document.getElementById("audit-newer").disabled = before === null;
  document.getElementById("audit-older").onclick = () => {
    older.push(before); before = events[events.length - 1].id; drawAudit();
  };
}

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
  const newer = el("button", { type: "button", id: "audit-newer" }, "Newer");
  newer.onclick = () => { before = older.pop() ?? null; drawAudit(); };
  const sections = [
    el("p", { class: "hint" }, "A disabled user's every token is refused at once and their queued runs are cancelled; running runs finish and keep their results. There is always at least one enabled admin."),
    ...addUserForm(),
    el("p", { class: "error", id: "team-error" }),
    el("table", { id: "user-table" }, el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "role"),
      el("th", {}, "state"), el("th", {}, ""), el("th", {}, ""))), el("tbody", { id: "user-rows" })),
    el("h2", {}, "Audit trail"),
    el("p", { class: "hint" }, "Who did what to whom, newest first: users added, disabled, re-enabled and re-roled, tokens issued and revoked, and an admin's cancel or delete of someone else's run."),
    el("table", { id: "audit-table" }, el("thead", {}, el("tr", {}, el("th", {}, "when"), el("th", {}, "who"),
      el("th", {}, "what"), el("th", {}, "to whom"))), el("tbody", { id: "audit-rows" })),
    el("p", {}, newer, " ", el("button", { type: "button", id: "audit-older" }, "Older")),
  ];
  return sections;
}

export const drawTeam = () => Promise.all([drawUsers(), drawAudit()]);

// The audit trail as a table, the audit page's and the users page's: who did what to whom,
// newest first, a page at a time (GET /api/audit: Older asks for the events before the
// last one shown, Newer goes back), all of them or one project's. The server decides what
// the caller reads (an admin every event, a project's owner that project's).
import { el, getJSON, when } from "./api.js";

const PAGE = 25;   // events per page
const SHORT = 90;  // a longer detail is cut, all of it on hover

// one event's target in words: "token 7 (laptop of eve)", "run 5 (baseline)", "project 2 (vision)"
export function target(e) {
  const d = e.detail || {};
  const name = e.target_kind === "token" ? `${d.name} of ${d.user}` : d.name ?? d.project;
  return `${e.target_kind} ${e.target_id ?? ""}${name ? ` (${name})` : ""}`;
}

// the rest of it: "eve: viewer → editor", "default → vision · 3 runs", "member → admin · …"
export function detail(e, projectName) {
  const d = e.detail || {};
  const moved = e.action === "run.moved" || e.action === "run.moved_out";
  const value = (v) => (v === null || v === undefined ? "none" : moved ? projectName(v) : v);
  const out = [];
  if (moved && d.after_name) {  // a move names both projects (ids of projects not yours)
    out.push(`${d.before_name ?? value(d.before)} → ${d.after_name}`);
  } else if ("before" in d || "after" in d) {
    out.push(`${e.action.startsWith("project.member") ? `${d.user}: ` : ""}${value(d.before)} → ${value(d.after)}`);
  }
  for (const [k, v] of Object.entries(d)) {
    if (["name", "user", "user_id", "owner_id", "project", "before", "after", "before_name",
         "after_name"].includes(k)) continue;
    const key = k.replaceAll("_", " ");
    out.push(Array.isArray(v) ? `${key} ${v.join(", ") || "none"}`
      : typeof v === "number" ? `${v} ${v === 1 && key.endsWith("s") ? key.slice(0, -1) : key}`
      : `${key} ${v}`);
  }
  return out.join(" · ");
}

// The filter (projects: [{id, name}], `all` the label of no filter), the table and its
// pager; draw() asks for the page shown, from the newest when the filter changes.
export function auditLog({ projects, all = "every project" }) {
  const names = new Map(projects.map((p) => [p.id, p.name]));
  const projectName = (id) => names.get(id) ?? `#${id}`;
  const pick = el("select", { id: "audit-project" }, el("option", { value: "" }, all),
    ...projects.map((p) => el("option", { value: p.id }, p.name)));
  const rows = el("tbody", { id: "audit-rows" });
  const newer = el("button", { type: "button", id: "audit-newer" }, "← Newer");
  const older = el("button", { type: "button", id: "audit-older" }, "Older →");
  const info = el("span", { id: "audit-info", class: "meta" });
  let before = null;  // the page shown starts before this event id (null: the newest)
  const pages = [];   // the pages before it, for Newer

  async function draw() {
    const q = new URLSearchParams({ limit: PAGE + 1 });  // one more: whether there are older
    if (before) q.set("before", before);
    if (pick.value) q.set("project", pick.value);
    const got = await getJSON(`/api/audit?${q}`);
    const events = got.slice(0, PAGE);
    rows.replaceChildren(...(events.length ? events.map((e) => {
      const text = detail(e, projectName);
      return el("tr", { "data-event": e.id }, el("td", {}, when(e.at)),
        el("td", {}, e.actor_name || "(the service)"), el("td", {}, e.action), el("td", {}, target(e)),
        el("td", { class: "audit-project" }, e.project_id ? projectName(e.project_id) : "–"),
        el("td", { class: "audit-detail", ...(text.length > SHORT ? { title: text } : {}) },
          text.length > SHORT ? `${text.slice(0, SHORT - 1)}…` : text));
    }) : [el("tr", {}, el("td", { colspan: 6, class: "meta" }, before ? "no older events" : "no events yet"))]));
    info.textContent = events.length ? `${when(events[events.length - 1].at)} – ${when(events[0].at)}` : "";
    older.disabled = got.length <= PAGE;
    newer.disabled = before === null;
    older.onclick = () => { pages.push(before); before = events[events.length - 1].id; return draw(); };
  }
  newer.onclick = () => { before = pages.pop() ?? null; return draw(); };
  pick.onchange = () => { before = null; pages.length = 0; return draw(); };
  const nodes = [
    el("p", { class: "filters" }, el("label", { for: "audit-project" }, "Project "), pick),
    el("table", { id: "audit-table" }, el("thead", {}, el("tr", {}, ...["when", "who", "action", "target",
      "project", "detail"].map((h) => el("th", {}, h)))), rows),
    el("nav", { class: "pager", "aria-label": "audit pages" }, newer, info, older)];
  return { nodes, draw, pick };
}

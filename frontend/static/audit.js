// The audit page: an admin's audit trail (every event) or a project owner's (the events of
// the projects they own), newest first, all of them or one project's (?project=<id>, kept
// in the address). A member who owns no project is told so in a line, not an error.
import { el, getJSON, whoami, withLogin } from "./api.js";
import { auditLog } from "./auditlog.js";

withLogin(async () => {
  const [me, projects] = await Promise.all([whoami(), getJSON("/api/projects")]);
  const page = document.getElementById("page");
  const admin = me.role === "admin";
  const owned = projects.filter((p) => p.role === "owner");  // an admin's: every project
  page.hidden = false;
  if (!admin && !owned.length) {
    page.replaceChildren(el("h1", {}, "Audit trail"), el("p", { id: "audit-none" },
      "You own no project: the audit trail is for admins and for the owners of a project. Your projects: ",
      el("a", { href: "/projects" }, "Projects"), "."));
    return;
  }
  const log = auditLog({ projects: owned, all: admin ? "every event" : "all my projects" });
  const wanted = new URLSearchParams(location.search).get("project");
  if (owned.some((p) => String(p.id) === wanted)) log.pick.value = wanted;
  log.pick.addEventListener("change", () => history.replaceState(null, "",
    log.pick.value ? `/audit?project=${log.pick.value}` : "/audit"));
  page.replaceChildren(el("h1", {}, "Audit trail"),
    el("p", { class: "hint" }, admin
      ? "Who did what to whom, newest first: users, tokens, projects and their members, and runs created, changed, moved, cancelled and deleted, in every project."
      : `Who did what in the project${owned.length === 1 ? "" : "s"} you own, newest first: members set and removed, runs created, changed, moved in or out, cancelled and deleted.`),
    ...log.nodes);
  await log.draw();
});

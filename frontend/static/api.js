// Talks to the REST API with the bearer token kept in localStorage.
// A token in the URL fragment (#token=...) is stored and removed from the address bar.

const KEY = "neuroreg.token";

export function token() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    localStorage.setItem(KEY, decodeURIComponent(m[1]));
    // keep the rest of the fragment (e.g. #cond-none on a study page)
    const rest = location.hash.replace(/[#&]?token=[^&]+/, "").replace(/^#?&?/, "");
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return localStorage.getItem(KEY);
}

export class AuthError extends Error {}

// A request the server refused (status and its detail) or never answered (status 0); its
// message says both: "HTTP 404 — run 9999 does not exist"
export class ApiError extends Error {
  constructor(status, detail, path) {
    super(status ? `HTTP ${status} — ${detail}` : detail);
    this.status = status;
    this.detail = detail;
    this.path = path;
  }
}

// fetch with the token; a rejected token throws AuthError (the page shows sign-in), no
// answer at all an ApiError with status 0
async function request(path, options = {}) {
  let res;
  try {
    res = await fetch(path, {
      ...options,
      headers: { Authorization: `Bearer ${token()}`, ...(options.headers || {}) },
    });
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message})`, path);
  }
  if (res.status === 401) throw new AuthError("token rejected");
  return res;
}

// the server's reason in words: its detail, or each invalid field's ("url: must be …")
export function detailOf(body, status) {
  const detail = body && typeof body === "object" ? body.detail : body;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

export async function api(path, options = {}) {
  const res = await request(path, options);
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new ApiError(res.status, detailOf(body, res.status), path);
  }
  return res;
}

export const getJSON = async (path) => (await api(path)).json();

// the artifact each role is stored under (ml/artifacts.py), asked once: pages never spell them
let names = null;
export const artifactNames = () => (names ??= getJSON("/api/artifact-names"));

// how figures write norms (L∞, L2, …), asked once: ml/evaluate/attacks.py's NORM_LABELS
let labels = null;
export const fieldLabels = () => (labels ??= getJSON("/api/labels"));

// who is signed in ({id, name, role}), asked once
let mine = null;
export const whoami = () => (mine ??= getJSON("/api/me"));

// Shows the sign-in form until a token works. start() runs at once, beside /api/me, so a
// page's first requests leave before plotly.js is parsed; a rejected token shows the form.
export async function withLogin(start) {
  const login = document.getElementById("login");
  const form = document.getElementById("login-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem(KEY, document.getElementById("token").value.trim());
    location.reload();
  });
  if (!token()) { login.hidden = false; return; }
  const me = whoami().then((user) => {
    document.getElementById("whoami").textContent = `${user.name} (${user.role})`;
    addNav(user);
  });
  try {
    await Promise.all([me, start()]);
  } catch (err) {
    if (!(err instanceof AuthError)) {  // the page could not load: say why, in the page
      showError(err);
      console.error(err);
      return;
    }
    for (const section of document.querySelectorAll("main > section")) section.hidden = true;
    login.hidden = false;
    document.getElementById("login-error").textContent = "That token was rejected.";
  }
}

// A failed request in words: "HTTP 404 — run 9999 does not exist", or that nothing answered
export const describe = (err) => String(err && err.message ? err.message : err);

const TITLES = { 0: "No answer from the server", 403: "Not allowed", 404: "Not found",
  409: "Refused", 422: "Refused", 500: "The server failed", 503: "The server is not ready" };

// Every page's one place for a failed request: a box at the top of the page with a title,
// the status and the server's detail (as text, never markup), then `more` (nodes: a link
// on). By default the page's own sections are hidden (an empty skeleton says nothing);
// keep: true leaves them (a refresh failed; what is shown is still the last answer).
export function showError(err, { title, more = [], keep = false } = {}) {
  const main = document.querySelector("main");
  let box = document.getElementById("page-error");
  if (!box) {
    box = el("section", { id: "page-error", class: "page-error", role: "alert" });
    main.prepend(box);
  }
  if (!keep) {
    for (const section of main.querySelectorAll(":scope > section")) section.hidden = section !== box;
  }
  box.hidden = false;
  box.classList.toggle("kept", keep);
  box.replaceChildren(el(keep ? "h2" : "h1", {}, title || TITLES[err && err.status] || "Something went wrong"),
    el("p", { class: "error", id: "page-error-detail" }, describe(err)),
    ...more.map((m) => el("p", {}, ...[m].flat())),
    ...(keep ? [] : [el("p", {}, el("a", { href: "/" }, "← all runs"))]));
  if (!keep) document.title = `neuroreg · ${title || TITLES[err && err.status] || "error"}`;
  return box;
}

// Parts of a page drawn side by side, each on its own: those that failed are said in one
// kept box at the top (which part, the status and the server's detail), the rest stay
// drawn. [[label, promise], …] → how many failed.
export async function settleParts(parts) {
  const results = await Promise.allSettled(parts.map(([, job]) => job));
  const failed = results.map((r, i) => [parts[i][0], r]).filter(([, r]) => r.status === "rejected");
  if (!failed.length) return 0;
  for (const [, r] of failed) console.error(r.reason);
  const [[label, { reason }]] = failed;
  showError(reason, { keep: true, title: failed.length === 1 ? `${label} could not be drawn`
    : `${failed.length} parts of this page could not be drawn`,
  more: failed.length === 1 ? [] : failed.map(([l, r]) => `${l}: ${describe(r.reason)}`) });
  return failed.length;
}

// The box, gone once what failed has worked again
export function clearError() {
  const box = document.getElementById("page-error");
  if (box && box.classList.contains("kept")) box.hidden = true;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

export const fmt = (v, digits = 3) => (v === undefined || v === null ? "–" : Number(v).toFixed(digits));
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

// the projects the signed-in user belongs to (every one for an admin), each with their
// role in it, asked once; a page that changes them asks GET /api/projects itself
let projects = null;
export const myProjects = () => (projects ??= getJSON("/api/projects"));

// The same links on every page, after the brand. The audit trail is an admin's and a
// project owner's: a member's nav shows it once their projects say they own one.
function addNav(user) {
  const header = document.querySelector("header");
  if (!header || header.querySelector("nav.top")) return;
  const admin = user.role === "admin";
  const link = ([href, text]) => el("a", { href, ...(location.pathname === href ? { "aria-current": "page" } : {}) }, text);
  const links = [["/", "Runs"], ["/submit", "Submit"], ["/compare", "Compare"],
    ["/leaderboard", "Leaderboard"], ["/storage", "Storage"], ["/projects", "Projects"], ["/tokens", "Tokens"],
    ...(admin ? [["/users", "Users"], ["/audit", "Audit"]] : [])];
  const nav = el("nav", { class: "top", "aria-label": "pages" }, ...links.map(link));
  header.querySelector(".brand").after(nav);
  if (!admin) {
    myProjects().then((mine) => {
      if (mine.some((p) => p.role === "owner")) nav.append(link(["/audit", "Audit"]));
    }).catch(() => {});  // the nav without it; the page itself says what failed
  }
}

// POST/PATCH/DELETE with a JSON body; returns {ok, status, body} without throwing on 4xx.
export async function send(method, path, body) {
  const res = await request(path, {
    method, headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  return { ok: res.ok, status: res.status, body: parsed };
}

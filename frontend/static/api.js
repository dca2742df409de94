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

// fetch with the token; a rejected token throws AuthError (the page shows sign-in)
async function request(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token()}`, ...(options.headers || {}) },
  });
  if (res.status === 401) throw new AuthError("token rejected");
  return res;
}

export async function api(path, options = {}) {
  const res = await request(path, options);
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new Error(typeof body.detail === "string" ? body.detail
      : Array.isArray(body.detail) ? body.detail.map((e) =>  // validation: name each field
        `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ")
      : `HTTP ${res.status}`);
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
  const me = getJSON("/api/me").then((user) => {
    document.getElementById("whoami").textContent = `${user.name} (${user.role})`;
    addNav();
  });
  try {
    await Promise.all([me, start()]);
  } catch (err) {
    if (!(err instanceof AuthError)) throw err;
    for (const section of document.querySelectorAll("main > section")) section.hidden = true;
    login.hidden = false;
    document.getElementById("login-error").textContent = "That token was rejected.";
  }
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

// The same links on every page, after the brand.
function addNav() {
  const header = document.querySelector("header");
  if (!header || header.querySelector("nav.top")) return;
  const links = [["/", "Runs"], ["/submit", "Submit"], ["/compare", "Compare"],
    ["/leaderboard", "Leaderboard"], ["/tokens", "Tokens"]];
  const nav = el("nav", { class: "top", "aria-label": "pages" },
    ...links.map(([href, text]) => el("a", { href, ...(location.pathname === href ? { "aria-current": "page" } : {}) }, text)));
  header.querySelector(".brand").after(nav);
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

// Titanium Blog SPA: hash routes as in the original system's SPA (#/, #/login, #/signup, #/posts/:id, #/posts/new,
// #/posts/:id/edit), tokens in sessionStorage: a short-lived access token, renewed with the refresh token when
// an answer says 401. Everything user-supplied goes in through textContent or attribute setters, never as HTML.
"use strict";

const PAGE_SIZE = 10;
const view = document.getElementById("view");
const nav = document.getElementById("nav");

const session = {
  get token() { return sessionStorage.getItem("token"); },
  get refreshToken() { return sessionStorage.getItem("refresh_token"); },
  get user() { return JSON.parse(sessionStorage.getItem("user") || "null"); },
  save(tokens, user) {
    sessionStorage.setItem("token", tokens.access_token);
    sessionStorage.setItem("refresh_token", tokens.refresh_token);
    if (user) sessionStorage.setItem("user", JSON.stringify(user));
  },
  clear() { for (const key of ["token", "refresh_token", "user"]) sessionStorage.removeItem(key); },
};

// One refresh at a time: a refresh token is good for one use, so parallel 401s share the same renewal.
let renewing = null;
async function renewTokens() {
  if (!session.refreshToken) return false;
  renewing = renewing || (async () => {
    const answer = await fetch("/api/auth/refresh", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refreshToken }),
    });
    if (!answer.ok) { session.clear(); return false; }
    session.save(await answer.json());
    return true;
  })().finally(() => { renewing = null; });
  return renewing;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function describe(body, status) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  return detail || `request failed (${status})`;
}

async function send(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function api(method, path, body) {
  let answer = await send(method, path, body);
  if (answer.status === 401 && session.token && path.startsWith("/api/posts")) {
    // The access token expired or was revoked: renew it once, else the session is over.
    if (await renewTokens()) answer = await send(method, path, body);
    else session.clear();
  }
  const data = answer.status === 204 ? null : await answer.json().catch(() => null);
  if (!answer.ok) throw new Error(describe(data, answer.status));
  return data;
}

async function logOut() {
  if (session.refreshToken) await send("POST", "/api/auth/logout", { refresh_token: session.refreshToken }).catch(() => null);
  session.clear();
  if (location.hash === "#/") route(); else location.hash = "#/";
}

function show(...nodes) { view.replaceChildren(...nodes); }
function failure(error) { return el("p", { class: "error", role: "alert", text: error.message }); }
function when(iso) { return new Date(iso).toLocaleString(); }
function mayEdit(post) { const u = session.user; return u && (u.role === "admin" || String(u.sub) === String(post.author_id)); }

function renderNav() {
  const user = session.user;
  const items = user
    ? [el("a", { href: "#/posts/new", text: "Write" }), el("span", { text: user.username }),
       el("button", { onclick: logOut, text: "Log out" })]
    : [el("a", { href: "#/login", text: "Log in" }), el("a", { href: "#/signup", text: "Sign up" })];
  nav.replaceChildren(...items);
}

async function listPage(page) {
  const data = await api("GET", `/api/posts?page=${page}&size=${PAGE_SIZE}`);
  const posts = data.items.map((post) => el("article", { class: "post-summary" },
    el("h2", {}, el("a", { href: `#/posts/${post.id}`, text: post.title })),
    el("p", { class: "meta", text: `${post.author} · ${when(post.created_at)}` }),
    el("p", { text: post.excerpt })));
  const pager = el("div", { class: "pager" });
  if (page > 1) pager.append(el("a", { href: `#/?page=${page - 1}`, text: "← Newer" }));
  pager.append(el("span", { text: `Page ${page} of ${Math.max(data.pages, 1)}` }));
  if (page < data.pages) pager.append(el("a", { href: `#/?page=${page + 1}`, text: "Older →" }));
  show(...(posts.length ? posts : [el("p", { text: "No posts yet." })]), pager);
}

async function readPost(id) {
  const post = await api("GET", `/api/posts/${id}`);
  const article = el("article", { class: "post" },
    el("h1", { text: post.title }),
    el("p", { class: "meta", text: `${post.author} · ${when(post.created_at)}` }),
    el("div", { class: "content", text: post.content }));
  if (mayEdit(post)) {
    article.append(el("a", { href: `#/posts/${id}/edit` }, el("button", { type: "button", text: "Edit" })),
      el("button", { type: "button", onclick: async () => {
        if (!confirm("Delete this post?")) return;
        try { await api("DELETE", `/api/posts/${id}`); location.hash = "#/"; } catch (e) { article.append(failure(e)); }
      }, text: "Delete" }));
  }
  show(article);
}

function form(title, fields, submitLabel, onSubmit) {
  const inputs = {};
  const node = el("form", {}, el("h1", { text: title }));
  for (const [name, label, type, value, limits] of fields) {
    const input = el(type === "textarea" ? "textarea" : "input", { name, id: `f-${name}`, required: "", ...limits });
    if (type !== "textarea") input.setAttribute("type", type);
    input.value = value || "";
    inputs[name] = input;
    node.append(el("label", { for: `f-${name}`, text: label }), input);
  }
  const status = el("p", { class: "error", role: "alert" });
  node.append(el("button", { type: "submit", text: submitLabel }), status);
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "";
    const values = Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value]));
    try { await onSubmit(values); } catch (e) { status.textContent = e.message; }
  });
  return node;
}

async function logIn(username, password) {
  const answer = await api("POST", "/api/auth/login", { username, password });
  const verified = await fetch("/api/auth/verify", { headers: { Authorization: `Bearer ${answer.access_token}` } });
  const who = await verified.json();
  session.save(answer, { sub: who.sub, username: who.username, role: who.role });
}

function loginView() {
  show(form("Log in", [["username", "Username", "text"], ["password", "Password", "password"]], "Log in",
    async ({ username, password }) => { await logIn(username, password); location.hash = "#/"; }));
}

function signupView() {
  show(form("Sign up", [["username", "Username", "text", "", { minlength: 3, maxlength: 32 }],
    ["email", "Email", "email"], ["password", "Password", "password", "", { minlength: 8 }]], "Create account",
    async ({ username, email, password }) => {
      await api("POST", "/api/users", { username, email, password });
      await logIn(username, password);
      location.hash = "#/";
    }));
}

async function editorView(id) {
  if (!session.token) { location.hash = "#/login"; return; }
  const post = id ? await api("GET", `/api/posts/${id}`) : { title: "", content: "" };
  show(form(id ? "Edit post" : "New post", [
    ["title", "Title", "text", post.title, { maxlength: 120 }],
    ["content", "Content", "textarea", post.content, { maxlength: 20000 }]], id ? "Save" : "Publish",
    async (values) => {
      const saved = id ? await api("PATCH", `/api/posts/${id}`, values) : await api("POST", "/api/posts", values);
      location.hash = `#/posts/${saved.id}`;
    }));
}

async function route() {
  renderNav();
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const page = Math.max(parseInt(new URLSearchParams(query).get("page"), 10) || 1, 1);
  let match;
  try {
    if (path === "/" || path === "") await listPage(page);
    else if (path === "/login") loginView();
    else if (path === "/signup") signupView();
    else if (path === "/posts/new") await editorView(null);
    else if ((match = path.match(/^\/posts\/(\d+)\/edit$/))) await editorView(match[1]);
    else if ((match = path.match(/^\/posts\/(\d+)$/))) await readPost(match[1]);
    else show(el("p", { text: "Not found." }));
  } catch (error) {
    show(failure(error));
  }
}

window.addEventListener("hashchange", route);
route();

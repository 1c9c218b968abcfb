// isp-daemon's admin page script: calls the admin API with the operator's
// API key (or a session key traded for the admin token) and draws what it answers (tables, the settings form generated from
// a plugin's config schema, the dependency graph and metric charts as SVG).
"use strict";
const state = { token: sessionStorage.getItem("isp-daemon-token") || "", settings: null };
const SVG = "http://www.w3.org/2000/svg";

// An API key is used as it is; anything else is taken for the admin token
// and traded for the daemon's admin page session key (POST /api/session:
// every scope, 12 hours, the live one handed out again on every visit).
async function logIn(credential) {
  if (credential.startsWith("ispk_")) {
    state.token = credential;
  } else {
    const response = await fetch("/api/session", {
      method: "POST",
      headers: { "Authorization": "Bearer " + credential },
    });
    const body = await response.json();
    if (!response.ok) throw new Error(response.status + ": " + body.error);
    state.token = body.secret;
  }
  sessionStorage.setItem("isp-daemon-token", state.token);
}

// ?token= is taken once and removed from the address bar.
function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("token");
  if (!fromUrl) return null;
  url.searchParams.delete("token");
  history.replaceState(null, "", url.pathname + url.search);
  return fromUrl;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "for" || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function say(text, isError) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

/// An API call; a refusal throws an Error carrying the JSON problem as `.problem`.
async function api(method, path, body, contentType) {
  const headers = { "Authorization": "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
  const response = await fetch("/api" + path, { method, headers, body });
  const type = response.headers.get("content-type") || "";
  const answer = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error(response.status + ": " + ((answer && answer.error) || String(answer)));
    error.problem = answer;
    throw error;
  }
  return answer;
}

function table(headings, rows, attrs) {
  const t = el("table", attrs || {}, el("thead", {}, el("tr", {}, ...headings.map(h => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  for (const row of rows) body.append(row);
  t.append(body);
  return el("div", { class: "table-wrap" }, t);
}

function why(p, tenant) {
  if (p.state === "waiting") return p.waiting || "waiting";
  if (p.state === "not_entitled") return "tier " + tenant.tier + " does not include it (needs " + p.required_tier + ")";
  if (p.state === "inactive") return p.requested ? "requested, not active" : "not requested";
  return "";
}

function renderTenants(data) {
  const root = document.getElementById("tenants");
  root.replaceChildren();
  for (const tenant of data.tenants) {
    root.append(el("h3", {}, tenant.tenant + " (tier " + tenant.tier + ")"));
    const rows = tenant.plugins.map(p => {
      const action = p.active ? "deactivate" : "activate";
      const button = el("button", {
        type: "button", "data-action": action, "data-tenant": tenant.tenant, "data-plugin": p.plugin,
        disabled: !p.active && !p.entitled, title: p.waiting || "",
      }, action === "activate" ? "Activate" : "Deactivate");
      button.addEventListener("click", () => change(action, tenant.tenant, p.plugin));
      const settings = el("button", {
        type: "button", "data-settings": "", "data-tenant": tenant.tenant, "data-plugin": p.plugin,
        disabled: !p.entitled,
      }, "Settings");
      settings.addEventListener("click", () => {
        state.opener = { tenant: tenant.tenant, plugin: p.plugin };
        openSettings(tenant.tenant, p.plugin, p.requested);
      });
      return el("tr", {},
        el("td", {}, p.plugin + " " + p.version),
        el("td", {}, p.required_tier),
        el("td", { class: p.state, "data-state": "", "data-tenant": tenant.tenant, "data-plugin": p.plugin }, p.state.replace("_", " ")),
        el("td", { class: "why", "data-why": "", "data-tenant": tenant.tenant, "data-plugin": p.plugin }, why(p, tenant)),
        el("td", {}, button, " ", settings));
    });
    root.append(table(["plugin", "needs tier", "state", "why", ""], rows, { "data-tenant-table": tenant.tenant }));
    const providers = Object.entries(tenant.providers).map(([kind, id]) => kind + ": " + (id || "none")).join(" · ");
    root.append(el("p", {}, "Providers — " + providers));
  }
}

function renderPlugins(data) {
  const rows = data.installed.map(p => {
    const signature = p.signature.status === "verified" ? "verified (" + p.signature.key_id + ")" : "unverified";
    const isolation = el("td", { "data-isolation": p.id });
    if (!p.isolation) {
      isolation.append("in-process");
    } else {
      const i = p.isolation;
      isolation.append(i.mode + (i.pid ? " (pid " + i.pid + ")" : "") + ", " + i.restarts + " restart(s)",
        el("br"), el("small", {}, i.sandbox.join("; ")));
      if (i.quarantined) {
        isolation.append(el("br"), el("span", { class: "error" }, "quarantined: " + i.quarantined));
        const release = el("button", { type: "button", "data-release": p.id }, "Release");
        release.addEventListener("click", () => releaseQuarantine(p.id));
        isolation.append(" ", release);
      }
    }
    const remove = el("button", { type: "button", "data-remove": p.id, "aria-label": "Remove " + p.id }, "Remove");
    remove.addEventListener("click", () => removePlugin(p.id));
    return el("tr", { "data-installed": p.id }, el("td", {}, p.id), el("td", {}, p.identity.version),
      el("td", {}, p.identity.category), el("td", {}, p.state),
      el("td", {}, (p.tenants || []).join(", ")), el("td", {}, signature), isolation, el("td", {}, remove));
  });
  const root = document.getElementById("plugins");
  root.replaceChildren(table(["id", "version", "category", "state", "tenants", "signature", "isolation", ""], rows));
  for (const problem of data.problems) root.append(el("p", { class: "error" }, problem));
}

function renderHealth(data) {
  const root = document.getElementById("health");
  root.replaceChildren(el("p", {}, "Overall: ", el("span", { class: data.status, id: "health-status" }, data.status)));
  root.append(table(["plugin", "status", "message", "calls", "errors"], data.plugins.map(p =>
    el("tr", {}, el("td", {}, p.plugin), el("td", { class: p.status }, p.status),
      el("td", {}, p.message), el("td", {}, p.metrics.calls), el("td", {}, p.metrics.errors)))));
}

function renderCatalog(data) {
  const root = document.getElementById("catalog");
  root.replaceChildren();
  for (const source of data.sources) {
    root.append(el("h3", {}, (source.kind === "plugin-directory" ? "Plugin directory " : source.kind + " ") + source.location +
      (source.installable ? " (uploads go here)" : "")));
    const byCategory = {};
    for (const p of source.plugins) (byCategory[p.category] = byCategory[p.category] || []).push(p);
    const rows = [];
    for (const category of Object.keys(byCategory).sort()) {
      for (const p of byCategory[category]) {
        rows.push(el("tr", { "data-available": p.id }, el("td", {}, category), el("td", {}, p.id + " " + p.version),
          el("td", {}, p.description), el("td", {}, p.required_tier),
          el("td", {}, p.dependencies.join(", ") || "—"), el("td", {}, p.state || "not running")));
      }
    }
    root.append(table(["category", "plugin", "description", "needs tier", "needs", "state"], rows));
  }
  for (const problem of data.problems) root.append(el("p", { class: "error" }, problem));
}

function renderTiers(data) {
  document.getElementById("tiers").replaceChildren(table(["tier", "includes", "tenants"], data.tiers.map(t =>
    el("tr", { "data-tier": t.tier }, el("td", {}, t.tier), el("td", {}, t.includes.join(", ") || "—"),
      el("td", {}, t.tenants.join(", ") || "—")))));
}

/// A layered drawing: each plugin in the column after everything it needs.
function renderGraph(graph, dot, plugins) {
  const states = {};
  for (const p of plugins.installed) states[p.id] = String(p.state).toLowerCase();
  const layer = {};
  const needs = id => graph.edges.filter(e => e.from === id).map(e => e.to);
  const depth = (id, seen) => {
    if (layer[id] !== undefined) return layer[id];
    if (seen.has(id)) return 0;
    seen.add(id);
    const d = needs(id).reduce((m, n) => Math.max(m, depth(n, seen) + 1), 0);
    layer[id] = d;
    return d;
  };
  for (const n of graph.nodes) depth(n.id, new Set());
  const columns = [];
  for (const n of graph.nodes) (columns[layer[n.id]] = columns[layer[n.id]] || []).push(n);
  const W = 190, H = 46, GX = 70, GY = 22;
  const pos = {};
  columns.forEach((col, x) => col.forEach((n, y) => { pos[n.id] = { x: 10 + x * (W + GX), y: 10 + y * (H + GY) }; }));
  const width = 20 + Math.max(1, columns.length) * (W + GX) - GX;
  const height = 20 + Math.max(1, ...columns.map(c => c.length)) * (H + GY) - GY;
  const drawing = svg("svg", { id: "graph-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "Dependency graph: " + graph.nodes.map(n => n.id + " needs " + (needs(n.id).join(", ") || "nothing")).join("; ") });
  drawing.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
    markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#666" }))));
  for (const e of graph.edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    const x1 = a.x, y1 = a.y + H / 2, x2 = b.x + W, y2 = b.y + H / 2;
    drawing.append(svg("path", { class: "edge " + (e.kind === "optional" ? "optional" : ""),
      d: `M ${x1} ${y1} C ${x1 - GX / 2} ${y1}, ${x2 + GX / 2} ${y2}, ${x2} ${y2}` }));
  }
  for (const n of graph.nodes) {
    const p = pos[n.id];
    const host = states[n.id];
    const kind = n.state === "blocked" ? "blocked" : host === undefined ? "stopped" : host.includes("fail") ? "failed" : "running";
    drawing.append(svg("g", { class: "node-" + kind, "data-node": n.id, transform: `translate(${p.x},${p.y})` },
      svg("title", {}, n.id + " " + n.version + ": " + (n.state === "blocked" ? "blocked" : host || "not running")),
      svg("rect", { width: W, height: H, rx: 6 }),
      svg("text", { x: 10, y: 19 }, n.id + " " + n.version),
      svg("text", { x: 10, y: 36, fill: "#555" }, n.state === "blocked" ? "blocked" : host || "not running")));
  }
  const legend = el("p", { class: "why" }, "Arrows point from a plugin to what it needs. Green: running; grey: not running; red: blocked or failed. Start order: " +
    graph.start_order.join(" → ") + "; stop order: " + graph.stop_order.join(" → "));
  const root = document.getElementById("graph");
  root.replaceChildren(drawing, legend);
  for (const b of graph.blocked) root.append(el("p", { class: "error" }, b));
  document.getElementById("graph-dot").textContent = dot;
}

function nanos(ns) {
  if (ns === null || ns === undefined) return "—";
  if (ns < 1e3) return ns + " ns";
  if (ns < 1e6) return (ns / 1e3).toFixed(1) + " µs";
  return (ns / 1e6).toFixed(1) + " ms";
}

/// One small chart per plugin over the last 15 minutes: a bar per sample
/// interval for calls (blue) and errors (red), placed by time, newest right.
function renderMetrics(data) {
  const root = document.getElementById("metrics");
  root.replaceChildren();
  const charts = el("div", { class: "charts" });
  const span = 15 * 60 * 1000;
  for (const [plugin, samples] of Object.entries(data.plugins)) {
    const last = samples[samples.length - 1] || {};
    const now = last.at_ms || 0;
    const deltas = [];
    for (let i = 1; i < samples.length; i++) {
      deltas.push({ at: samples[i].at_ms, from: samples[i - 1].at_ms,
        calls: Math.max(0, samples[i].calls - samples[i - 1].calls),
        errors: Math.max(0, samples[i].errors - samples[i - 1].errors) });
    }
    const W = 260, H = 80;
    const max = Math.max(1, ...deltas.map(d => d.calls));
    const x = t => W - ((now - t) / span) * W;
    const chart = svg("svg", { width: W, height: H + 14, viewBox: `0 0 ${W} ${H + 14}`, role: "img", "data-chart": plugin,
      "aria-label": `${plugin}: ${last.calls || 0} calls, ${last.errors || 0} errors so far; p50 ${nanos(last.p50_ns)}, p99 ${nanos(last.p99_ns)}` },
      svg("rect", { x: 0, y: 0, width: W, height: H, fill: "#fafafa", stroke: "#ddd" }));
    for (const d of deltas) {
      const left = Math.max(0, x(d.from)), width = Math.max(2, x(d.at) - left);
      const bar = (count, cls) => {
        const h = (count / max) * (H - 4);
        if (count > 0) chart.append(svg("rect", { class: cls, x: left, y: H - h, width, height: h },
          svg("title", {}, `${count} ${cls === "bar-calls" ? "calls" : "errors"} in ${Math.round((d.at - d.from) / 1000)} s`)));
      };
      bar(d.calls, "bar-calls");
      bar(d.errors, "bar-errors");
    }
    chart.append(svg("text", { x: 2, y: H + 12, fill: "#555" }, `15 min ago … now · max ${max} calls per bar`));
    charts.append(el("div", { class: "chart", "data-metrics": plugin },
      el("h3", {}, plugin),
      chart,
      el("p", {}, el("span", { class: "legend-calls" }, "calls " + (last.calls || 0)), " · ",
        el("span", { class: "legend-errors" }, "errors " + (last.errors || 0)), " · p50 " + nanos(last.p50_ns) + " · p99 " + nanos(last.p99_ns),
        " · reloads " + (last.reloads || 0) + " · rollbacks " + (last.rollbacks || 0)),
      tenantCounts(last.tenants || {}, samples.length > 1 ? samples[0].tenants || {} : {})));
  }
  root.append(charts, el("p", { class: "why" },
    "Bars count calls per plugin over all tenants; the table under each chart splits them by tenant (so far, and over the window)."));
}

// A plugin's calls and errors per tenant: so far, and since the oldest sample shown.
function tenantCounts(now, then) {
  const names = Object.keys(now);
  if (names.length === 0) return el("p", { class: "why" }, "no tenant calls yet");
  return table(["tenant", "calls", "errors", "calls (15 min)"], names.map(t => el("tr", { "data-tenant": t },
    el("td", {}, t), el("td", {}, now[t].calls), el("td", { class: now[t].errors ? "error" : "" }, now[t].errors),
    el("td", {}, Math.max(0, now[t].calls - ((then[t] || {}).calls || 0))))));
}

function auditRows(entries) {
  return entries.slice().reverse().map(e => el("tr", {}, el("td", {}, e.time), el("td", {}, e.actor), el("td", {}, e.action),
    el("td", {}, e.tenant || ""), el("td", {}, e.plugin || ""),
    el("td", {}, (e.from_version || "") + (e.to_version || e.from_version ? " → " + (e.to_version || "removed") : "")),
    el("td", { class: e.outcome === "ok" ? "" : "error" }, e.outcome), el("td", {}, e.detail)));
}

function renderHistory(data) {
  document.getElementById("history").replaceChildren(
    table(["time", "actor", "action", "tenant", "plugin", "versions", "outcome", "detail"], auditRows(data.entries)));
}

function renderAudit(data) {
  document.getElementById("audit").replaceChildren(
    table(["time", "actor", "action", "tenant", "plugin", "versions", "outcome", "detail"], auditRows(data.entries), { id: "audit-table" }));
}

async function refresh() {
  if (!state.token) { say("Enter the admin token or an API key to log in."); return; }
  try {
    const [info, tenants, plugins, health, graph, dot, audit, catalog, tiers, series, history] = await Promise.all([
      api("GET", "/daemon"), api("GET", "/tenants"), api("GET", "/plugins"), api("GET", "/health"),
      api("GET", "/graph"), api("GET", "/graph.dot"), api("GET", "/audit?limit=15"), api("GET", "/catalog"),
      api("GET", "/tiers"), api("GET", "/metrics/series"), api("GET", "/history"),
    ]);
    document.getElementById("daemon").textContent =
      "isp-daemon " + info.version + " · trust " + info.trust + " · tiers " + info.tiers.join(" < ") +
      (info.watching ? " · watching for changes" : "");
    renderTenants(tenants);
    renderPlugins(plugins);
    renderHealth(health);
    renderCatalog(catalog);
    renderTiers(tiers);
    renderGraph(graph, dot, plugins);
    renderMetrics(series);
    renderHistory(history);
    renderAudit(audit);
    return true;
  } catch (error) {
    say(String(error.message || error), true);
    return false;
  }
}

async function run(pending, work, done) {
  say(pending);
  try {
    const answer = await work();
    await refresh();
    say(done(answer));
  } catch (error) {
    await refresh();
    say(String(error.message || error), true);
  }
}

function releaseQuarantine(plugin) {
  return run("Releasing " + plugin + " from quarantine…",
    () => api("POST", "/plugins/" + encodeURIComponent(plugin) + "/release"),
    () => plugin + " released: a fresh process serves it.");
}

function change(action, tenant, plugin) {
  return run((action === "activate" ? "Activating " : "Deactivating ") + plugin + " for " + tenant + "…",
    () => api("POST", "/tenants/" + encodeURIComponent(tenant) + "/plugins/" + encodeURIComponent(plugin) + "/" + action),
    () => plugin + " " + action + "d for " + tenant + ".");
}

function removePlugin(plugin) {
  return run("Removing " + plugin + "…", () => api("DELETE", "/plugins/" + encodeURIComponent(plugin)),
    () => plugin + " removed.");
}

async function upload(event) {
  event.preventDefault();
  const file = document.getElementById("package-file").files[0];
  if (!file) { say("Choose a package file first.", true); document.getElementById("package-file").focus(); return; }
  const query = "?name=" + encodeURIComponent(file.name) +
    (document.getElementById("allow-downgrade").checked ? "&allow_downgrade=true" : "");
  await run("Uploading " + file.name + "…", async () => api("POST", "/packages" + query, await file.arrayBuffer(), "application/x-tar"),
    a => a.plugin + " " + a.to_version + " " + a.outcome + " (" + a.signature + ").");
}

/// The source a value comes from, as the API reports it; a reference is shown as such.
function describe(key, spec, view) {
  const source = view && view.sources ? view.sources[key] : undefined;
  if (!source) return spec.sensitive ? "unset" : "not set" + (spec.default !== null ? " (default " + JSON.stringify(spec.default) + ")" : "");
  const reference = source.match(/ via (\$\{.*\})$/);
  if (reference) return "set — reference " + reference[1];
  if (spec.sensitive) return "set (" + source + ")";
  return "from " + source;
}

/// The tenant's own overrides as far as the view shows them (references are shown; values are, unless sensitive).
function currentOverrides(schema, view) {
  const overrides = {};
  if (!view) return overrides;
  for (const spec of schema.keys) {
    const source = view.sources[spec.key] || "";
    if (!source.startsWith("the tenant's overrides")) continue;
    const reference = source.match(/ via (\$\{.*\})$/);
    if (reference) overrides[spec.key] = reference[1];
    else if (!spec.sensitive && view.config[spec.key] !== "<redacted>") overrides[spec.key] = view.config[spec.key];
  }
  return overrides;
}

/// A numeric key's allowed range, as the label says it.
function range(spec) {
  const has = v => v !== null && v !== undefined;
  if (has(spec.min) && has(spec.max)) return ", from " + spec.min + " to " + spec.max;
  if (has(spec.min)) return ", at least " + spec.min;
  if (has(spec.max)) return ", at most " + spec.max;
  return "";
}

async function openSettings(tenant, plugin, requested) {
  try {
    const schema = await api("GET", "/plugins/" + encodeURIComponent(plugin) + "/schema");
    const view = requested ? await api("GET", "/tenants/" + encodeURIComponent(tenant) + "/plugins/" + encodeURIComponent(plugin) + "/config").catch(() => null) : null;
    state.settings = { tenant, plugin, schema, view, requested: !!view };
    renderSettings();
    document.getElementById("settings-section").hidden = false;
    const first = document.querySelector("#settings input, #settings select, #settings textarea");
    if (first) first.focus();
  } catch (error) {
    say(String(error.message || error), true);
  }
}

function renderSettings(fieldErrors, typed) {
  const { tenant, plugin, schema, view, requested } = state.settings;
  const form = document.getElementById("settings");
  const current = currentOverrides(schema, view);
  form.replaceChildren(el("p", {}, `${schema.name} ${schema.version} for tenant ${tenant}. ` +
    "Leave a field empty to keep what is set (or the default). Sensitive fields take a secret reference: " + schema.references.join(", ") + "."));
  for (const spec of schema.keys) {
    const id = "field-" + spec.key;
    const errorId = id + "-error";
    const statusId = id + "-status";
    const shown = current[spec.key];
    let input;
    if (spec.type === "boolean") {
      input = el("select", { id, name: spec.key },
        el("option", { value: "" }, "— keep —"), el("option", { value: "true" }, "true"), el("option", { value: "false" }, "false"));
      if (shown !== undefined && typeof shown === "boolean") input.value = String(shown);
    } else if (spec.type === "list") {
      input = el("textarea", { id, name: spec.key, rows: 2, placeholder: "one item per line" });
      if (Array.isArray(shown)) input.value = shown.join("\n");
    } else {
      const type = spec.sensitive ? "password" : "text";
      input = el("input", { id, name: spec.key, type, autocomplete: "off",
        inputMode: spec.type === "integer" ? "numeric" : spec.type === "float" ? "decimal" : undefined,
        placeholder: spec.sensitive ? "${env:VAR}, ${file:/path} or ${vault:path#key}" : spec.default !== null ? "default: " + JSON.stringify(spec.default) : "" });
      if (shown !== undefined && !spec.sensitive) input.value = typeof shown === "string" ? shown : JSON.stringify(shown);
    }
    if (typed && typed[spec.key] !== undefined) input.value = typed[spec.key];
    input.setAttribute("aria-describedby", statusId + " " + errorId);
    if (spec.required) input.setAttribute("aria-required", "true");
    const problem = (fieldErrors || []).filter(f => f.field === spec.key).map(f => f.error).join(" ");
    if (problem) input.setAttribute("aria-invalid", "true");
    form.append(el("div", { class: "field" + (problem ? " invalid" : ""), "data-field": spec.key },
      el("label", { for: id }, spec.key + (spec.required ? " (required)" : "") + " — " + spec.type + (spec.sensitive ? ", sensitive" : "") + range(spec)),
      spec.description ? el("p", { class: "help" }, spec.description) : null,
      input,
      el("p", { class: "status", id: statusId, "data-field-status": spec.key }, describe(spec.key, spec, view)),
      el("p", { class: "field-error", id: errorId, "data-field-error": spec.key, role: problem ? "alert" : undefined }, problem)));
  }
  const other = (fieldErrors || []).filter(f => !schema.keys.some(k => k.key === f.field));
  for (const f of other) form.append(el("p", { class: "error" }, f.field + ": " + f.error));
  const save = el("button", { type: "submit", id: "settings-save" }, requested ? "Save settings" : "Save and activate");
  const cancel = el("button", { type: "button", id: "settings-close" }, "Close");
  cancel.addEventListener("click", () => {
    document.getElementById("settings-section").hidden = true;
    // Back to the button that opened the form (the tables were redrawn since).
    const o = state.opener;
    const back = o && document.querySelector(`button[data-settings][data-tenant="${o.tenant}"][data-plugin="${o.plugin}"]`);
    if (back) back.focus();
  });
  form.append(el("p", {}, save, " ", cancel));
}

/// The form's values as overrides: typed per the schema, empty fields kept as they were.
function collectOverrides() {
  const { schema, view } = state.settings;
  const overrides = currentOverrides(schema, view);
  for (const spec of schema.keys) {
    const input = document.getElementById("field-" + spec.key);
    const raw = input.value.trim();
    if (raw === "") continue;
    if (spec.type === "integer" && /^-?\d+$/.test(raw)) overrides[spec.key] = Number(raw);
    else if (spec.type === "float" && raw !== "" && !isNaN(Number(raw)) && !raw.startsWith("${")) overrides[spec.key] = Number(raw);
    else if (spec.type === "boolean") overrides[spec.key] = raw === "true";
    else if (spec.type === "list") overrides[spec.key] = raw.split("\n").map(s => s.trim()).filter(s => s);
    else overrides[spec.key] = raw;
  }
  return overrides;
}

async function saveSettings(event) {
  event.preventDefault();
  const { tenant, plugin, requested } = state.settings;
  const overrides = collectOverrides();
  const path = "/tenants/" + encodeURIComponent(tenant) + "/plugins/" + encodeURIComponent(plugin);
  say("Saving " + plugin + "'s settings for " + tenant + "…");
  try {
    if (requested) await api("PUT", path + "/config", JSON.stringify(overrides));
    else await api("POST", path + "/activate", JSON.stringify(overrides));
    await refresh();
    state.settings.view = await api("GET", path + "/config");
    state.settings.requested = true;
    renderSettings();
    say(requested ? plugin + "'s settings saved for " + tenant + "." : plugin + " activated for " + tenant + " with these settings.");
  } catch (error) {
    const fields = error.problem && error.problem.fields;
    // What the operator typed stays in the form, next to what is wrong with it.
    const typed = {};
    for (const spec of state.settings.schema.keys) typed[spec.key] = document.getElementById("field-" + spec.key).value;
    renderSettings(fields || [], typed);
    say(String(error.message || error), true);
    const invalid = document.querySelector("#settings [aria-invalid=true]");
    if (invalid) invalid.focus();
  }
}

async function logInThenRefresh(credential) {
  try {
    await logIn(credential);
  } catch (error) {
    say(String(error.message || error), true);
    return;
  }
  refresh().then(ok => ok && say("Up to date."));
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  logInThenRefresh(document.getElementById("token").value.trim());
});
document.getElementById("refresh").addEventListener("click", () => refresh().then(ok => ok && say("Up to date.")));
document.getElementById("upload").addEventListener("submit", upload);
document.getElementById("settings").addEventListener("submit", saveSettings);
const fromUrl = takeTokenFromUrl();
if (fromUrl) logInThenRefresh(fromUrl); else refresh().then(ok => ok && say("Up to date."));
// The charts follow the sampler on their own; nothing else changes under the operator.
setInterval(() => {
  if (state.token) api("GET", "/metrics/series").then(renderMetrics).catch(() => {});
}, 5000);

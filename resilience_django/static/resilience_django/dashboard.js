/* Breaker dashboard: polls the JSON endpoint and redraws; no build step, no dependencies.
   Text from the server (breaker names, reasons) is only ever set as textContent. */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const root = $("rd-dashboard");
  if (!root) return;
  const api = root.dataset.api;
  const interval = parseInt(root.dataset.interval || "2000", 10);
  const HISTORY = 90; // points kept per breaker: 3 minutes at the default interval
  let history = new Map(); // breaker name -> [failure rate, ...]
  const openDetails = new Set();
  const labels = {closed: "closed", open: "open", half_open: "half-open", forced_open: "forced open",
                  disabled: "disabled", metrics_only: "metrics only"};
  let canOperate = root.dataset.canOperate === "1";
  let pending = null; // {name, action} awaiting confirmation

  function el(tag, attrs, children, ns) {
    const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }
  const svg = (tag, attrs) => el(tag, attrs, [], "http://www.w3.org/2000/svg");
  const tr = (cells) => el("tr", {}, cells.map((c) => el("td", {text: String(c)})));
  const none = (cols) => [el("tr", {}, [el("td", {colspan: String(cols), class: "rd-muted", text: "none"})])];
  const orDash = (x, f) => (x === null || x === undefined) ? "—" : f(x);
  const pct = (x) => orDash(x, (v) => (100 * v).toFixed(1) + "%");
  function ago(seconds) {
    if (seconds < 1) return "just now";
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    return Math.round(seconds / 3600) + " h ago";
  }

  function sparkline(points, state) {
    const w = 120, h = 28;
    const last = points.length ? points[points.length - 1] : 0;
    const chart = svg("svg", {viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", // stretch to the card's width
      class: "rd-spark rd-spark-" + state, role: "img", "aria-label": "error rate over the last minutes, now " + pct(last)});
    const step = w / Math.max(HISTORY - 1, 1);
    const x0 = w - step * (points.length - 1);
    const xy = points.map((p, i) => [(x0 + i * step).toFixed(1), (h - 1 - p * (h - 2)).toFixed(1)]);
    chart.appendChild(svg("line", {x1: 0, x2: w, y1: h - 1, y2: h - 1, class: "rd-spark-base"}));
    // The 50% mark, to read the height by.
    chart.appendChild(svg("line", {x1: 0, x2: w, y1: h / 2, y2: h / 2, class: "rd-spark-grid"}));
    if (xy.length > 1) {
      const line = xy.map((p) => p.join(",")).join(" ");
      chart.appendChild(svg("polygon", {points: `${xy[0][0]},${h - 1} ${line} ${xy[xy.length - 1][0]},${h - 1}`, class: "rd-spark-area"}));
      chart.appendChild(svg("polyline", {points: line, class: "rd-spark-line"}));
    }
    return chart;
  }

  function metric(dl, term, value, cls) {
    dl.append(el("dt", {text: term}), el("dd", cls ? {class: cls, text: value} : {text: value}));
  }

  function card(b, now) {
    const points = history.get(b.name) || [];
    const article = el("article", {class: "rd-card rd-state-" + b.state, "data-breaker": b.name, "data-state": b.state});
    article.appendChild(el("header", {}, [
      el("h3", {text: b.name}),
      el("span", {class: "rd-pill", text: labels[b.state] || b.state}),
    ]));
    article.appendChild(sparkline(points, b.state));
    const dl = el("dl", {class: "rd-dl"});
    // An open breaker's window is not measured.
    const unmeasured = (b.state === "open" || b.state === "forced_open") && !b.calls;
    metric(dl, "failure rate", unmeasured ? "— (not measured while open)" : pct(b.failure_rate));
    metric(dl, "EWMA", unmeasured ? "—" : pct(b.ewma));
    metric(dl, "slow-call rate", unmeasured ? "—" : pct(b.slow_rate));
    metric(dl, "calls in window", String(b.calls));
    metric(dl, "rejected", String(b.rejected));
    if (b.state === "open") metric(dl, "half-open in", b.retry_after.toFixed(1) + " s");
    const t = b.last_transition;
    metric(dl, "last transition", t ? `${labels[t.from] || t.from} → ${labels[t.to] || t.to}, ${ago(now - t.at)}` : "none");
    if (t && t.reason) metric(dl, "reason", t.reason);
    article.appendChild(dl);
    const details = el("details", {class: "rd-procs"});
    if (openDetails.has(b.name)) details.open = true;
    details.addEventListener("toggle", () => details.open ? openDetails.add(b.name) : openDetails.delete(b.name));
    const states = Object.entries(b.states).map(([s, n]) => `${n} ${labels[s] || s}`).join(", ");
    details.appendChild(el("summary", {text: `${b.processes.length} process${b.processes.length === 1 ? "" : "es"}: ${states}`}));
    const rows = b.processes.map((p) => tr([`${p.host}:${p.pid}`, labels[p.state] || p.state,
      p.calls, pct(p.failure_rate), pct(p.ewma), p.rejected]));
    details.appendChild(el("div", {class: "rd-scroll"}, [el("table", {class: "rd-small"}, [
      el("thead", {}, [el("tr", {}, ["process", "state", "calls", "failure rate", "EWMA", "rejected"].map((h) => el("th", {text: h})))]),
      el("tbody", {}, rows),
    ])]));
    article.appendChild(details);
    if (canOperate) {
      const actions = el("div", {class: "rd-actions"});
      for (const [action, label] of [["force_open", "Force open"], ["force_close", "Force close"], ["reset", "Reset"], ["disable", "Disable"]]) {
        const button = el("button", {type: "button", class: "button" + (action === "force_open" ? " rd-danger" : ""), "data-action": action, text: label});
        button.addEventListener("click", () => confirmAction(b.name, action, label));
        actions.appendChild(button);
      }
      article.appendChild(actions);
    }
    return article;
  }

  function render(state) {
    canOperate = !!state.can_operate;
    const now = state.time;
    const shown = new Map(); // breakers gone from the fleet are forgotten
    for (const b of state.breakers) {
      const points = history.get(b.name);
      // First sight of this breaker: start from the server's recent history.
      shown.set(b.name, !points && b.history && b.history.length
        ? b.history.map((p) => p[1]).slice(-HISTORY)
        : [...(points || []), b.error_rate].slice(-HISTORY));
    }
    history = shown;
    $("rd-breakers").replaceChildren(...(state.breakers.length
      ? state.breakers.map((b) => card(b, now))
      : [el("p", {class: "rd-muted", text: "No breaker has been used yet."})]));
    const lim = $("rd-limiter");
    lim.replaceChildren();
    const h = state.limiter || {};
    metric(lim, "backend", String(h.backend));
    metric(lim, "health", h.healthy ? "healthy" : "unhealthy", h.healthy ? "rd-ok" : "rd-bad");
    metric(lim, "fallback active", h.fallback_active ? "yes — deciding locally" : "no");
    metric(lim, "Redis latency", orDash(h.last_latency_ms, (v) => v + " ms"));
    metric(lim, "live instances", orDash(h.live_instances, String));
    if (h.last_error) metric(lim, "last error", String(h.last_error));
    // What every worker reports to the fleet store, not only the process serving this page.
    const workers = state.limiters || [];
    if (workers.length) {
      const falling = workers.filter((p) => p.fallback_active).length;
      metric(lim, "workers", `${workers.length} reporting, ` + (falling ? `${falling} falling back` : "none falling back"));
    }
    // The server sums the fleet's per-second counts: the last minute is there on first open.
    $("rd-window").textContent = `(last ${Math.round(state.window_seconds)} s, all processes)`;
    const rej = state.top_rejections.map((r) => tr([r.rule, r.reason, r.count, r.total]));
    $("rd-rejections").replaceChildren(...(rej.length ? rej : none(4)));
    const dl = state.deadline_exceeded.map((r) => tr([r.route, r.last_minute, r.total]));
    $("rd-deadlines").replaceChildren(...(dl.length ? dl : none(3)));
    $("rd-updated").textContent = "Updated " + new Date(now * 1000).toLocaleTimeString();
    $("rd-fleet").textContent = state.fleet_error
      ? " · fleet store unavailable: " + state.fleet_error
      : ` · ${state.processes} process${state.processes === 1 ? "" : "es"} reporting`;
  }

  async function poll() {
    try {
      const response = await fetch(api, {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
    } catch (error) {
      $("rd-updated").textContent = "Update failed (" + error.message + "); retrying";
    }
  }

  function confirmAction(name, action, label) {
    pending = {name, action};
    $("rd-confirm-text").textContent = `${label} breaker “${name}” in every process?`;
    $("rd-confirm").showModal();
  }

  $("rd-confirm").addEventListener("close", async (event) => {
    const todo = pending;
    pending = null;
    if (event.target.returnValue !== "ok" || !todo) return;
    const token = root.querySelector("input[name=csrfmiddlewaretoken]").value;
    const response = await fetch(api + encodeURIComponent(todo.name) + "/", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": token, Accept: "application/json"},
      body: JSON.stringify({action: todo.action}),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      $("rd-updated").textContent = `Action refused: ${body.error || response.status}`;
    }
    await poll();
  });

  const initial = $("rd-initial-state");
  if (initial) render(JSON.parse(initial.textContent));
  (async function loop() { await poll(); setTimeout(loop, interval); })();
})();

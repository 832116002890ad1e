// The ordersaga console's pages. Plain JS, no build step, no outside requests.
// Rule: data from the server goes into the page only as text nodes and attribute values
// (el/svg below), never through innerHTML, so free text such as a reason with HTML in it shows
// as text. The server's Content-Security-Policy backs this up.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const LIST_POLL_MS = 2000;
const ORDER_POLL_MS = 1500;
const LETTERS_POLL_MS = 5000;
const TERMINAL = ["COMPLETED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  return fill(node, attrs, children);
}

function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function replace(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
}

function $(id) { return document.getElementById(id); }

function money(cents) { return (cents / 100).toFixed(2); }

function clock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().slice(11, 23);
}

function seconds(ms) { return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s"; }

function orderLink(id) {
  return el("a", { href: "/orders/" + encodeURIComponent(id), class: "order-link" }, id);
}

function statusBadge(status) {
  return el("span", { class: "status s-" + status.toLowerCase() }, status);
}

function banner(message) {
  const node = $("banner");
  node.hidden = !message;
  replace(node, message || "");
}

function stamp(when) {
  replace($("updated"), "updated " + new Date(when || Date.now()).toLocaleTimeString());
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw refusal(response.status, body);
  return body;
}

// An error the server answered with: the API's gRPC code and message, and the HTTP status.
function refusal(httpStatus, body) {
  const error = (body && body.error) || {};
  const failure = new Error(`${error.code || "ERROR"} (HTTP ${httpStatus}): ${error.details || "no details"}`);
  failure.code = error.code;
  return failure;
}

// Poll `load` every `ms`, one request at a time: calling the returned function asks for a
// read now (after the one in flight, if any). Errors go to the banner; polling goes on.
function poll(load, ms) {
  let timer = null, busy = false, again = false;
  async function tick() {
    clearTimeout(timer);
    if (busy) { again = true; return; }
    busy = true;
    try {
      await load();
    } catch (error) {
      banner(String(error.message || error));
    }
    busy = false;
    if (again) { again = false; tick(); return; }
    timer = setTimeout(tick, ms);
  }
  tick();
  return tick;
}

// ---- orders list --------------------------------------------------------------------------

function ordersPage() {
  const params = new URLSearchParams(location.search);
  const status = $("status");
  const search = $("search");
  search.value = params.get("q") || "";
  let statusesShown = false;
  let page = "";  // the page token of the page shown ("": the newest)
  let next = "";

  async function load() {
    const query = new URLSearchParams({ status: status.value, q: search.value.trim(), page });
    const data = await getJSON("/api/orders?" + query);
    if (!statusesShown) {
      for (const name of data.statuses) status.appendChild(el("option", { value: name }, name));
      status.value = params.get("status") || "";
      statusesShown = true;
      if (status.value) return load();
    }
    banner(data.error ? "The stack did not answer (showing the last list): " + data.error : "");
    next = data.next_page_token;
    $("next-page").hidden = !next;
    $("first-page").hidden = !page;
    replace($("shown"), `${data.matching} of ${data.total} orders match` +
      (data.matching > data.orders.length ? ` (${data.orders.length} on this page)` : ""));
    const rows = data.orders.map((o) => el("tr", { "data-order-id": o.order_id },
      el("td", {}, orderLink(o.order_id)),
      el("td", {}, o.customer_id),
      el("td", {}, statusBadge(o.status)),
      el("td", {}, o.reason),
      el("td", { class: "num" }, money(o.total_cents)),
      el("td", {}, clock(o.placed_at)),
      el("td", { class: "muted" }, o.last_step || (o.status_since ? "since " + clock(o.status_since) : ""))));
    replace(document.querySelector("#orders tbody"), rows.length ? rows
      : el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No orders match.")));
    stamp(data.fetched_at * 1000);
  }

  const refresh = poll(load, LIST_POLL_MS);
  function filtersChanged() {
    const query = new URLSearchParams();
    if (status.value) query.set("status", status.value);
    if (search.value.trim()) query.set("q", search.value.trim());
    history.replaceState(null, "", query.toString() ? "?" + query : location.pathname);
    page = "";
    $("bulk-confirm").hidden = true;
    refresh();
  }
  status.addEventListener("change", filtersChanged);
  search.addEventListener("input", filtersChanged);
  $("next-page").addEventListener("click", () => { page = next; refresh(); });
  $("first-page").addEventListener("click", () => { page = ""; refresh(); });
  setupBulk(() => ({ status: status.value, q: search.value.trim() }));
  poll(loadCharts, LIST_POLL_MS * 3);
}

// A bulk action over the orders the list's filters select: a preview (the API's dry run) says
// how many; running it takes that number, typed by the person (the API refuses a run over
// more orders than the number confirmed). Then its progress, until it ends.
function setupBulk(filters) {
  let previewed = null;
  let counted = 0;  // the orders the preview selected: the number to type
  const post = async (body) => {
    const response = await fetch("/api/bulk", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    const reply = await response.json().catch(() => ({}));
    if (!response.ok) throw refusal(response.status, reply);
    return reply;
  };
  const request = () => ({ ...filters(), action: $("bulk-action").value, note: $("bulk-note").value,
    by: localStorage.getItem("ordersaga-console-by") || "console" });
  $("bulk-preview").addEventListener("click", async () => {
    if (!$("bulk-action").value) { replace($("bulk-progress"), "Choose an action first."); return; }
    try {
      previewed = request();
      const preview = await post({ ...previewed, dry_run: true });
      counted = preview.selected;
      const alone = preview.left_alone ? `; ${preview.left_alone} more match and are left alone (their status)` : "";
      replace($("bulk-says"), preview.selected
        ? `${preview.selected} orders would be touched by ${preview.action} (${preview.filter})${alone}. ` +
          `First: ${preview.results.map((r) => r.order_id).join(", ")}`
        : `No orders match (${preview.filter}) that ${preview.action} applies to${alone}.`);
      $("bulk-confirm").hidden = false;
      $("bulk-run").disabled = !preview.selected;
      $("bulk-count").value = "";
      replace($("bulk-progress"), "");
    } catch (error) {
      replace($("bulk-progress"), `Preview refused: ${error.message}`);
    }
  });
  $("bulk-run").addEventListener("click", async () => {
    const typed = parseInt($("bulk-count").value, 10);
    if (!previewed || !(typed > 0)) { replace($("bulk-progress"), "Type the number of orders first."); return; }
    if (typed !== counted) {
      replace($("bulk-progress"), `Type ${counted}, the number of orders the preview counted, to run it.`);
      return;
    }
    try {
      const started = await post({ ...previewed, confirm_count: typed });
      $("bulk-confirm").hidden = true;
      follow(started.bulk_id);
    } catch (error) {
      replace($("bulk-progress"), `Refused: ${error.message}`);
    }
  });
  async function follow(bulkId) {
    for (;;) {
      try {
        const b = await getJSON("/api/bulk/" + encodeURIComponent(bulkId));
        replace($("bulk-progress"), `${b.action} ${b.bulk_id}: ${b.state}, ${b.done}/${b.selected} done: ` +
          `${b.changed} changed, ${b.skipped} skipped, ${b.failed} failed`);
        if (["COMPLETED", "FAILED", "TERMINATED"].includes(b.state)) return;
      } catch (error) {
        replace($("bulk-progress"), `${bulkId}: ${error.message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

// ---- one order ----------------------------------------------------------------------------

function orderPage() {
  const orderId = decodeURIComponent(location.pathname.replace(/^\/orders\//, ""));
  replace($("order-id"), orderId);
  document.title = `${orderId} · ordersaga console`;
  let current = null;

  async function load() {
    let order;
    try {
      order = await getJSON("/api/orders/" + encodeURIComponent(orderId));
    } catch (error) {
      if (error.code === "NOT_FOUND" || error.code === "INVALID_ARGUMENT") {
        replace($("status"), "");
        banner(error.message);
        return;
      }
      throw error;
    }
    banner("");
    current = order;
    showOrder(order);
    stamp();
  }

  const refresh = poll(load, ORDER_POLL_MS);
  setupConfirm(() => current, (order) => { if (order) showOrder(order); refresh(); });
}

function showOrder(order) {
  replace($("status"), statusBadge(order.status));
  const facts = [
    ["Customer", order.customer_id],
    ["Total", money(order.total_cents)],
    ["Reason", order.reason || "–"],
    ["Saga", `${order.saga_instance_id} (workflow ${order.saga_runtime_status || "?"})`],
    ["Tracking number", order.tracking_number || "–"],
    ["Trace", order.trace_url
      ? el("a", { href: order.trace_url, target: "_blank", rel: "noopener", id: "trace-link" }, "open in Zipkin")
      : "no trace backend (start the stack with --observe)"],
  ];
  replace($("facts"), facts.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
  const actions = $("actions");
  if (actions.dataset.shown !== order.actions.join()) {  // redrawn only when they change: no lost clicks
    actions.dataset.shown = order.actions.join();
    replace(actions, order.actions.map((action) =>
      el("button", { type: "button", "data-action": action, class: "action a-" + action }, label(action))));
  }
  replace($("gantt"), ganttChart(order.gantt));
  replace(document.querySelector("#timeline tbody"), order.timeline.map((e) => el("tr", {},
    el("td", {}, clock(e.at)), el("td", {}, e.step), el("td", {}, e.outcome), el("td", {}, e.detail))));
  replace(document.querySelector("#items tbody"), order.items.map((i) => el("tr", {},
    el("td", {}, i.sku), el("td", { class: "num" }, String(i.quantity)), el("td", { class: "num" },
      money(i.unit_price_cents)))));
}

function label(action) {
  return { approve: "Approve", reject: "Reject", cancel: "Cancel order", retry: "Retry", close: "Close by hand" }[action];
}

// Steps over time: one row per step (parallel steps overlap in time on rows of their own),
// compensation in its own colour, moments (placed, approval received, ended) as ticks on top.
function ganttChart(g) {
  if (!g.lanes.length && !g.markers.length) return el("p", { class: "muted" }, "No timeline yet.");
  const labelW = 190, width = 900, row = 22, top = 44, right = 70;
  const height = top + g.lanes.length * row + 24;
  const span = Math.max(g.span_ms, 1);
  const x = (ms) => labelW + (ms / span) * (width - labelW - right);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "gantt-svg", role: "img" });
  for (const tick of ticks(span)) {
    chart.appendChild(svg("line", { x1: x(tick), x2: x(tick), y1: top - 6, y2: height - 18, class: "grid" }));
    chart.appendChild(svg("text", { x: x(tick), y: height - 4, class: "axis", "text-anchor": "middle" },
      seconds(tick)));
  }
  g.markers.forEach((m, i) => {
    const mx = x(m.at_ms), y = 12 + (i % 2) * 14;
    const nearEnd = mx > width - right - 60;  // label to the left of the tick, to stay inside
    chart.appendChild(svg("line", { x1: mx, x2: mx, y1: y + 2, y2: height - 18, class: "marker-line" }));
    chart.appendChild(svg("text", { x: nearEnd ? mx - 3 : mx + 3, y, class: "marker",
      "text-anchor": nearEnd ? "end" : "start" }, `${m.step} ${m.outcome}`,
      svg("title", {}, `${m.step} ${m.outcome} at +${seconds(m.at_ms)}${m.detail ? ": " + m.detail : ""}`)));
  });
  g.lanes.forEach((lane, i) => {
    const y = top + i * row;
    const x0 = x(lane.start_ms), w = Math.max(3, x(lane.end_ms) - x0);
    const state = lane.running ? "running" : lane.outcome === "DONE" || lane.outcome === "APPROVED" ? "done" : "other";
    chart.appendChild(svg("text", { x: labelW - 6, y: y + 15, class: "lane-label", "text-anchor": "end" }, lane.name));
    chart.appendChild(svg("rect", { x: x0, y: y + 3, width: w, height: row - 6, rx: 3,
      class: `bar k-${lane.kind} o-${state}` },
      svg("title", {}, `${lane.name}: ${lane.outcome} (+${seconds(lane.start_ms)} → +${seconds(lane.end_ms)})` +
        (lane.detail ? ` ${lane.detail}` : ""))));
    chart.appendChild(svg("text", { x: x0 + w + 4, y: y + 15, class: "lane-outcome" },
      lane.running ? "running…" : lane.outcome));
  });
  return chart;
}

function ticks(span) {
  const steps = [100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000, 300000, 600000, 3600000, 21600000, 86400000];
  const step = steps.find((s) => span / s <= 8) || span / 8;
  const out = [];
  for (let t = 0; t <= span; t += step) out.push(t);
  return out;
}

// The confirmation step of every action: a dialog that says what will happen, asks who acts
// (remembered in this browser) and a reason or note where the API takes one.
function setupConfirm(currentOrder, done) {
  const dialog = $("confirm");
  let pending = null;
  const texts = {
    approve: "Publish an approve decision for this order on order-approvals?",
    reject: "Publish a reject decision for this order on order-approvals? The saga will undo its steps.",
    cancel: "Cancel this order? The saga undoes what it did; refused once the shipment is being created.",
    retry: "Run again what this order's saga left unfinished?",
    close: "End this order as its saga would have, because its unfinished work was done by hand?",
  };
  $("actions").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const order = currentOrder();
    if (!button || !order) return;
    pending = { action: button.dataset.action, orderId: order.order_id };
    replace($("confirm-title"), `${label(pending.action)}: ${order.order_id}`);
    replace($("confirm-text"), texts[pending.action]);
    $("by-field").hidden = pending.action === "cancel";
    $("reason-field").hidden = !["reject", "cancel", "approve"].includes(pending.action);
    $("note-field").hidden = pending.action !== "close";
    $("confirm-by").value = localStorage.getItem("ordersaga-console-by") || "";
    $("confirm-reason").value = "";
    $("confirm-note").value = "";
    dialog.showModal();
  });
  $("confirm-no").addEventListener("click", () => { pending = null; dialog.close(); });
  $("confirm-yes").addEventListener("click", async () => {
    if (!pending) return;
    const { action, orderId } = pending;
    pending = null;
    const by = $("confirm-by").value.trim();
    if (by) localStorage.setItem("ordersaga-console-by", by);
    const body = { by, reason: $("confirm-reason").value, note: $("confirm-note").value };
    dialog.close();
    notice("busy", `${label(action)}: sending…`);
    try {
      const response = await fetch(`/api/orders/${encodeURIComponent(orderId)}/${action}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const reply = await response.json().catch(() => ({}));
      if (!response.ok) throw refusal(response.status, reply);
      notice("ok", `${label(action)}: ${reply.message}`);
      done(reply.order);
    } catch (error) {
      notice("refused", `${label(action)} refused: ${error.message}`);
    }
  });
}

function notice(kind, message) {
  const node = $("notice");
  node.hidden = false;
  node.className = "notice n-" + kind;
  replace(node, message);
}

// ---- dead letters -------------------------------------------------------------------------

function lettersPage() {
  const chosen = new Set();
  const says = () => {
    $("redrive").disabled = !chosen.size;
    replace($("redrive-says"), chosen.size ? `${chosen.size} chosen` : "choose letters whose cause is fixed");
  };
  const pick = (l) => el("input", { type: "checkbox", "data-letter": l.id, checked: chosen.has(l.id),
    onchange: (event) => { if (event.target.checked) chosen.add(l.id); else chosen.delete(l.id); says(); } });
  const again = (l) => (l.redriven_by ? ` (again, after redrive ${l.redriven_by})` : "");
  poll(async () => {
    const data = await getJSON("/api/dead-letters");
    banner(data.error || "");
    const payload = (l) => el("pre", { class: "payload" }, l.payload + (l.truncated ? " …(cut)" : ""));
    replace(document.querySelector("#requests tbody"), data.requests.length ? data.requests.map((l) =>
      el("tr", { class: "letter" }, el("td", {}, pick(l)), el("td", {}, clock(l.time)),
        el("td", { class: "reason" }, l.reason + again(l)), el("td", {}, payload(l))))
      : el("tr", {}, el("td", { colspan: 4, class: "muted" }, "None.")));
    replace(document.querySelector("#approvals tbody"), data.approvals.length ? data.approvals.map((l) =>
      el("tr", { class: "letter" }, el("td", {}, pick(l)), el("td", {}, clock(l.time)),
        el("td", {}, l.order_id ? orderLink(l.order_id) : "–"),
        el("td", {}, l.decision ? `${l.decision} by ${l.approver}` : "–"),
        el("td", { class: "reason" }, l.reason + again(l)), el("td", {}, payload(l))))
      : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "None.")));
    stamp();
  }, LETTERS_POLL_MS);
  $("redrive").addEventListener("click", async () => {
    const ids = [...chosen];
    if (!ids.length || !confirm(`Send ${ids.length} dead letters back to their topics?`)) return;
    try {
      const response = await fetch("/api/dead-letters/redrive", { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ids }) });
      const reply = await response.json().catch(() => ({}));
      if (!response.ok) throw refusal(response.status, reply);
      chosen.clear();
      says();
      replace($("redrive-says"), reply.message);
    } catch (error) {
      replace($("redrive-says"), `Refused: ${error.message}`);
    }
  });
}

const pages = { orders: ordersPage, order: orderPage, letters: lettersPage };
pages[document.body.dataset.page]();

// cafgw dashboard: sign in with an API key, poll /v1/dashboard, render with
// textContent only (never innerHTML); replay (admin) and dismiss with a
// confirmation that records who. Shared helpers are on window.cafgw for browser.js.
"use strict";
(function () {
  const KEY = "cafgw.apiKey";
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let view = null;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function when(iso) {
    if (!iso) return "";
    return new Date(iso).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }

  function api(path, options) {
    const opts = options || {};
    opts.headers = Object.assign({}, opts.headers, {
      Authorization: "Bearer " + sessionStorage.getItem(KEY),
    });
    return fetch(path, opts);
  }

  function postJson(path, body) {
    return api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  function detailOf(problem, status) {
    if (typeof problem.detail === "string") return problem.detail;
    if (Array.isArray(problem.detail)) {
      return problem.detail.map((d) => (d.loc || []).slice(-1)[0] + ": " + d.msg).join("; ");
    }
    return "HTTP " + status;
  }

  function flash(text, bad) {
    const f = $("flash");
    f.textContent = text;
    f.className = bad ? "bad" : "";
    f.hidden = !text;
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    if (timer) clearTimeout(timer);
    view = null;
    for (const id of ["board", "messages", "logout", "tabs", "range-label"]) $(id).hidden = true;
    $("login").hidden = false;
    $("who").textContent = "";
    $("updated").textContent = "";
    flash("");
    $("login-error").textContent = message || "";
  }

  function fill(id, rows, makeRow, total) {
    $(id).replaceChildren(...rows.map(makeRow));
    $(id + "-empty").hidden = rows.length > 0;
    const all = total === undefined ? rows.length : total;
    $(id + "-count").textContent = "(" + all + (all > rows.length ? ", " + rows.length + " shown" : "") + ")";
  }

  function statusCell(status) {
    const td = el("td");
    td.appendChild(el("span", status, "status " + status));
    return td;
  }

  function reasonCell(m) {
    const td = el("td", undefined, "reason");
    if (!m.reason) return td;
    if (m.summary === m.reason) { td.textContent = m.reason; return td; }
    const details = el("details");
    details.appendChild(el("summary", m.summary));
    details.appendChild(el("pre", m.reason));
    td.appendChild(details);
    return td;
  }

  function idCell(m) {
    const td = el("td", undefined, "id");
    const link = el("button", m.message_id, "link");
    link.type = "button";
    link.title = "Open its history and audit entries";
    link.addEventListener("click", () => window.cafgw.openDetail(m.message_id));
    td.appendChild(link);
    return td;
  }

  // --- replay (admin) and dismiss: both ask first, both record who -------------------

  function confirmReplay(items, done) {
    const dialog = $("replay-dialog");
    $("replay-what").textContent = items.length === 1 ? "1 message" : items.length + " messages";
    $("replay-list").replaceChildren(...items.map((m) => el("li", m.message_id + " (" + m.authority + ", " + m.message_type + ")")));
    $("replay-error").textContent = "";
    $("replay-form").onsubmit = async (event) => {
      event.preventDefault();
      const res = await postJson("/v1/admin/dead-letters/replay", {
        // The digest names the one meant where other dead letters share its id.
        items: items.map((m) => ({ authority: m.authority, message_id: m.message_id, digest: m.digest || null })),
        requested_by: $("replay-by").value.trim(),
      });
      if (!res.ok) {
        const problem = await res.json().catch(() => ({}));
        $("replay-error").textContent = "Not replayed: " + detailOf(problem, res.status);
        return;
      }
      const outcomes = await res.json();
      dialog.close();
      const good = outcomes.filter((o) => o.replayed);
      const bad = outcomes.filter((o) => !o.replayed);
      flash("Replayed " + good.map((o) => o.message_id).join(", ") + (bad.length
        ? "; not replayed: " + bad.map((o) => o.message_id + " (" + o.detail + ")").join(", ") : "")
        + ".", bad.length > 0);
      if (done) done();
      refresh();
    };
    dialog.showModal();
  }

  function confirmDismiss(m, done) {
    const dialog = $("dismiss-dialog");
    $("dismiss-what").textContent = m.message_type + " " + m.message_id + " (" + m.status + ")";
    $("dismiss-error").textContent = "";
    $("dismiss-form").onsubmit = async (event) => {
      event.preventDefault();
      const res = await postJson(
        "/v1/messages/" + encodeURIComponent(m.message_id) + "/dismiss?authority=" + m.authority
          + "&sender=" + encodeURIComponent(m.sender) + "&status=" + encodeURIComponent(m.status),
        { by: $("dismiss-by").value.trim(), reason: $("dismiss-reason").value.trim() });
      if (!res.ok) {
        const problem = await res.json().catch(() => ({}));
        $("dismiss-error").textContent = "Not dismissed: " + detailOf(problem, res.status);
        return;
      }
      const outcomes = await res.json();
      dialog.close();
      $("dismiss-reason").value = "";
      const before = outcomes.find((o) => o.already_dismissed);
      flash(before
        ? "Already dismissed by " + before.actor + " at " + before.at + ": " + before.reason + ". Nothing recorded again."
        : "Dismissed " + m.message_id + " (" + m.status + "): recorded with your name and reason.");
      if (done) done();
      refresh();
    };
    dialog.showModal();
  }

  function actions(m, done) {
    const td = el("td", undefined, "actions");
    if (m.can_replay) {
      const b = el("button", "Replay");
      b.type = "button";
      b.addEventListener("click", () => confirmReplay([m], done));
      td.appendChild(b);
    } else if (m.erased) {
      // Its body was erased here: nothing to replay (the API would answer 409).
      td.appendChild(el("span", "body erased: nothing to replay", "muted"));
    }
    if (m.can_dismiss) {
      const b = el("button", "Dismiss");
      b.type = "button";
      b.addEventListener("click", () => confirmDismiss(m, done));
      td.appendChild(b);
    }
    return td;
  }

  // A checkbox per replayable row and a "Replay selected" button over the table.
  function selection(prefix) {
    const chosen = new Map();
    const button = $(prefix + "-replay");
    const count = $(prefix + "-selected");
    const update = () => {
      button.disabled = chosen.size === 0;
      count.textContent = chosen.size ? chosen.size + " selected" : "";
    };
    button.addEventListener("click", () => confirmReplay([...chosen.values()], () => { chosen.clear(); update(); }));
    return {
      reset() { chosen.clear(); update(); },
      cell(m) {
        const td = el("td");
        if (!m.can_replay) return td;
        const box = el("input");
        box.type = "checkbox";
        box.title = "Select for replay";
        box.checked = chosen.has(m.message_id);
        box.addEventListener("change", () => {
          if (box.checked) chosen.set(m.message_id, m); else chosen.delete(m.message_id);
          update();
        });
        td.appendChild(box);
        return td;
      },
      show(visible) { $(prefix + "-bulk").hidden = !visible; },
    };
  }

  // --- the overview ----------------------------------------------------------------

  let attentionPick = null;

  function attentionRow(m) {
    const tr = el("tr", undefined, m.need !== "RETRYING" ? "needs" : "");
    tr.dataset.messageId = m.message_id;
    tr.dataset.need = m.need || "";
    tr.append(attentionPick.cell(m), idCell(m), el("td", m.authority), el("td", m.direction.slice(0, 3)),
      el("td", m.message_type), el("td", m.counterparty), statusCell(m.need === "HANDOVER_FAILING" ? "HANDOVER_FAILING" : m.status),
      el("td", m.attempts), reasonCell(m), el("td", when(m.updated_at)), actions(m));
    return tr;
  }

  function awaitingRow(m) {
    const tr = el("tr", undefined, m.overdue ? "overdue" : "");
    tr.dataset.messageId = m.message_id;
    tr.append(idCell(m), el("td", m.authority), el("td", m.message_type),
      el("td", m.counterparty), el("td", m.attempts),
      el("td", when(m.deadline) + (m.overdue ? " (overdue)" : "")));
    return tr;
  }

  function disputeRow(d) {
    const tr = el("tr", undefined, d.overdue ? "overdue" : "");
    tr.append(el("td", d.dispute_id, "id"), el("td", d.authority), el("td", d.stage),
      el("td", when(d.deadline) + (d.overdue ? " (overdue)" : "")));
    return tr;
  }

  function recentRow(m) {
    const tr = el("tr");
    tr.dataset.messageId = m.message_id;
    tr.append(idCell(m), el("td", m.authority), el("td", m.direction.slice(0, 3)),
      el("td", m.message_type), el("td", m.counterparty), statusCell(m.status),
      el("td", when(m.updated_at)));
    return tr;
  }

  function queueRow(q) {
    const tr = el("tr", undefined, q.kind === "parking" && q.ready ? "overdue" : "");
    tr.dataset.queue = q.queue;
    const n = (v) => (v === null ? (q.exists ? "unknown" : "-") : v);
    tr.append(el("td", q.authority), el("td", q.queue + (q.exists ? "" : " (not declared)"), "id"),
      el("td", n(q.ready)), el("td", n(q.unacknowledged)), el("td", n(q.consumers)),
      el("td", q.source || ""));
    return tr;
  }

  function matrix(flows) {
    const table = $("flows");
    const senders = [...new Set(flows.map((f) => f.sender))].sort();
    const recipients = [...new Set(flows.map((f) => f.recipient))].sort();
    const cell = new Map(flows.map((f) => [f.sender + ">" + f.recipient, f]));
    const head = el("tr");
    head.append(el("th", "from \\ to"), ...recipients.map((r) => el("th", r)));
    const rows = senders.map((s) => {
      const tr = el("tr");
      tr.appendChild(el("th", s));
      for (const r of recipients) {
        const f = cell.get(s + ">" + r);
        if (!f) { tr.appendChild(el("td", "", "flow none")); continue; }
        const td = el("td", f.delivered + " / " + f.in_flight + " / " + f.failing + " / " + f.held, "flow " + f.state);
        td.dataset.flow = s + ">" + r;
        td.title = s + " to " + r + ": " + f.delivered + " delivered, " + f.in_flight + " in flight, "
          + f.failing + " failing, " + f.held + " held; last " + when(f.last_at);
        tr.appendChild(td);
      }
      return tr;
    });
    const thead = el("thead"); thead.appendChild(head);
    const tbody = el("tbody"); tbody.append(...rows);
    table.replaceChildren(thead, tbody);
    $("flows-empty").hidden = flows.length > 0;
    $("flows-count").textContent = "(" + flows.reduce((a, f) => a + f.total, 0) + " messages)";
    $("flows-window").textContent = view.flow_window_h;
  }

  function card(a) {
    const box = el("div", undefined, "card");
    box.dataset.authority = a.code;
    if (a.alert) box.classList.add("alert");
    box.appendChild(el("h3", a.code + " " + a.name));
    if (a.alerts.length) {
      const ul = el("ul", undefined, "alerts");
      a.alerts.forEach((text) => ul.appendChild(el("li", text)));
      box.appendChild(ul);
    }
    const series = view.rates.series[a.code];
    if (series) box.appendChild(window.cafgwCharts.lineChart(series, view.rates.start, view.rates.step_s, a.code + " " + a.name));
    const dl = el("dl");
    const add = (label, value, cls) => { dl.append(el("dt", label), el("dd", value, cls)); };
    add("last hour: sent / delivered", a.sent_last_hour + " / " + a.delivered_last_hour);
    add("last hour: received / failures", a.received_last_hour + " / " + a.failing_last_hour,
      a.failing_last_hour ? "warn" : "");
    add("awaiting receipt", a.awaiting_receipt);
    add("receipts overdue", a.receipts_overdue, a.receipts_overdue ? "warn" : "");
    add("needs a human", a.needs_human_total, a.needs_human_total ? "warn" : "");
    const h = a.handover;
    add("local system (" + h.connector + ")", (h.failing ? "FAILING, " : "") + h.waiting + " waiting",
      h.failing ? "warn handover" : "handover");
    add("parked on the broker", a.parked_inbound === null ? "unknown" : a.parked_inbound,
      a.parked_inbound ? "warn" : "");
    const days = a.certificate_days_left === null ? "none" : Math.floor(a.certificate_days_left) + " days";
    add("certificate expires in", days, a.certificate_warning ? "warn" : "");
    box.appendChild(dl);
    if (h.failing) {
      box.appendChild(el("div", "handover failing since " + when(h.failing_since) + " ("
        + h.failures + " failed attempts); last error: " + (h.last_error || "unknown"), "statuses handover-error"));
    }
    return box;
  }

  function render() {
    const admin = view.viewer.role === "admin";
    $("who").textContent = "Signed in as " + (admin ? "admin (all hosted authorities)" : "authority " + view.viewer.authority);
    $("updated").textContent = "Updated " + when(view.generated_at);
    $("health").replaceChildren(...view.health.map((h) => {
      const li = el("li", h.name + ": " + (h.ok ? "ok" : h.detail), h.ok ? "" : "down");
      li.title = h.detail;
      return li;
    }));
    const hours = view.rates.range_s / 3600;
    $("range-text").textContent = "(per " + Math.round(view.rates.step_s / 60) + " min, last " + hours + " h)";
    $("authorities").replaceChildren(...view.authorities.map(card));
    attentionPick.show(admin);
    fill("attention", view.attention, attentionRow, view.attention_total);
    matrix(view.flows);
    fill("queues", view.queues, queueRow);
    $("queues-note").textContent = view.queues_note || (view.queues.some((q) => q.source === "passive")
      ? "Unacknowledged counts need RabbitMQ's management API (broker.management_url); shown from passive declares."
      : "");
    fill("awaiting", view.awaiting_receipt, awaitingRow, view.awaiting_receipt_total);
    fill("disputes", view.disputes, disputeRow);
    fill("recent", view.recent, recentRow);
    // The recalls piece (recalls.js) lists one authority's recalls: an authority's own.
    $("recalls-panel").hidden = admin;
    window.cafgw.onView(view);
  }

  async function refresh() {
    if (timer) clearTimeout(timer);
    let delay = 5000;
    try {
      const res = await api("/v1/dashboard?range=" + $("range").value);
      if (res.status === 401) { signOut("That API key was not accepted."); return; }
      if (!res.ok) throw new Error("HTTP " + res.status);
      view = await res.json();
      $("login").hidden = true;
      for (const id of ["logout", "tabs", "range-label"]) $(id).hidden = false;
      if ($("messages").hidden) $("board").hidden = false;
      render();
      delay = view.refresh_s * 1000;
    } catch (err) {
      $("updated").textContent = "Connection lost (" + err.message + "); retrying";
    }
    timer = setTimeout(refresh, delay);
  }

  function showTab(name) {
    for (const tab of document.querySelectorAll("#tabs .tab")) tab.classList.toggle("active", tab.dataset.tab === name);
    $("board").hidden = name !== "overview";
    $("messages").hidden = name !== "messages";
  }

  window.cafgw = {
    el, when, api, postJson, detailOf, flash, statusCell, reasonCell, idCell, actions,
    selection, confirmReplay, confirmDismiss, showTab,
    refresh: () => refresh(),
    onView: () => {},
    openDetail: () => {},
  };

  document.addEventListener("DOMContentLoaded", () => {
    attentionPick = selection("attention");
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("api-key").value.trim());
      $("api-key").value = "";
      $("login-error").textContent = "";
      refresh();
    });
    $("logout").addEventListener("click", () => signOut(""));
    $("range").addEventListener("change", () => refresh());
    $("dismiss-cancel").addEventListener("click", () => $("dismiss-dialog").close());
    $("replay-cancel").addEventListener("click", () => $("replay-dialog").close());
    for (const tab of document.querySelectorAll("#tabs .tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
    if (sessionStorage.getItem(KEY)) refresh();
  });
})();

// cafgw dashboard: sign in with an API key, poll /v1/dashboard, render with
// textContent only (never innerHTML), replay dead letters as admin.
"use strict";
(function () {
  const KEY = "cafgw.apiKey";
  const $ = (id) => document.getElementById(id);
  let timer = null;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
  }

  function api(path, options) {
    const opts = options || {};
    opts.headers = Object.assign({}, opts.headers, {
      Authorization: "Bearer " + sessionStorage.getItem(KEY),
    });
    return fetch(path, opts);
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    if (timer) clearTimeout(timer);
    $("board").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("who").textContent = "";
    $("updated").textContent = "";
    $("login-error").textContent = message || "";
  }

  function flash(text, bad) {
    const f = $("flash");
    f.textContent = text;
    f.className = bad ? "bad" : "";
  }

  function fill(id, rows, makeRow, total) {
    const body = $(id);
    body.replaceChildren(...rows.map(makeRow));
    $(id + "-empty").hidden = rows.length > 0;
    const all = total === undefined ? rows.length : total;
    $(id + "-count").textContent = "(" + all + (all > rows.length ? ", " + rows.length + " shown" : "") + ")";
  }

  function statusCell(status) {
    const td = el("td");
    td.appendChild(el("span", status, "status " + status));
    return td;
  }

  function replayButton(m) {
    const button = el("button", "Replay");
    button.type = "button";
    button.dataset.messageId = m.message_id;
    button.addEventListener("click", async () => {
      button.disabled = true;
      const res = await api("/v1/dashboard/replay", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ authority: m.authority, message_id: m.message_id }),
      });
      if (res.ok) {
        flash("Replayed " + m.message_id + ": it will be published again.");
      } else {
        const problem = await res.json().catch(() => ({}));
        flash("Replay of " + m.message_id + " failed: " + (problem.detail || res.status), true);
      }
      refresh();
    });
    return button;
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

  function dismissButton(m) {
    const button = el("button", "Dismiss");
    button.type = "button";
    button.dataset.messageId = m.message_id;
    button.addEventListener("click", () => openDismiss(m));
    return button;
  }

  function openDismiss(m) {
    const dialog = $("dismiss-dialog");
    $("dismiss-what").textContent = m.message_type + " " + m.message_id + " (" + m.status + ")";
    $("dismiss-form").onsubmit = async (event) => {
      event.preventDefault();
      const by = $("dismiss-by").value.trim();
      const reason = $("dismiss-reason").value.trim();
      const res = await api("/v1/messages/" + encodeURIComponent(m.message_id) + "/dismiss?authority=" + m.authority, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ by: by, reason: reason }),
      });
      if (res.ok) {
        dialog.close();
        $("dismiss-reason").value = "";
        flash("Dismissed " + m.message_id + " (" + m.status + "): recorded with your name and reason.");
      } else {
        const problem = await res.json().catch(() => ({}));
        $("dismiss-error").textContent = "Not dismissed: " + detailOf(problem, res.status);
        return;
      }
      refresh();
    };
    $("dismiss-error").textContent = "";
    dialog.showModal();
  }

  function detailOf(problem, status) {
    if (typeof problem.detail === "string") return problem.detail;
    if (Array.isArray(problem.detail)) return problem.detail.map((d) => (d.loc || []).slice(-1)[0] + ": " + d.msg).join("; ");
    return "HTTP " + status;
  }

  function attentionRow(m) {
    const tr = el("tr");
    tr.dataset.messageId = m.message_id;
    tr.append(el("td", m.message_id, "id"), el("td", m.authority), el("td", m.direction.slice(0, 3)),
      el("td", m.message_type), el("td", m.counterparty), statusCell(m.status),
      el("td", m.attempts), reasonCell(m), el("td", when(m.updated_at)));
    const action = el("td");
    if (m.can_replay) action.appendChild(replayButton(m));
    if (m.can_dismiss) action.appendChild(dismissButton(m));
    tr.appendChild(action);
    return tr;
  }

  function awaitingRow(m) {
    const tr = el("tr", undefined, m.overdue ? "overdue" : "");
    tr.dataset.messageId = m.message_id;
    tr.append(el("td", m.message_id, "id"), el("td", m.authority), el("td", m.message_type),
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
    tr.append(el("td", m.message_id, "id"), el("td", m.authority), el("td", m.direction.slice(0, 3)),
      el("td", m.message_type), el("td", m.counterparty), statusCell(m.status),
      el("td", when(m.updated_at)));
    return tr;
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
    const dl = el("dl");
    const add = (label, value, cls) => { dl.append(el("dt", label), el("dd", value, cls)); };
    add("sent in the last hour", a.sent_last_hour);
    add("delivered in the last hour", a.delivered_last_hour);
    add("received in the last hour", a.received_last_hour);
    add("failures in the last hour", a.failing_last_hour, a.failing_last_hour ? "warn" : "");
    add("awaiting receipt", a.awaiting_receipt);
    add("receipts overdue", a.receipts_overdue, a.receipts_overdue ? "warn" : "");
    add("needs a human", a.needs_human_total, a.needs_human_total ? "warn" : "");
    const h = a.handover;
    add("local system (" + h.connector + ")", h.failing
      ? "failing since " + when(h.failing_since) + ", " + h.waiting + " waiting"
      : h.waiting + " waiting", h.failing ? "warn handover" : "handover");
    add("parked on the broker", a.parked_inbound === null ? "unknown" : a.parked_inbound,
      a.parked_inbound ? "warn" : "");
    const days = a.certificate_days_left === null ? "none" : Math.floor(a.certificate_days_left) + " days";
    add("certificate expires in", days, a.certificate_warning ? "warn" : "");
    box.appendChild(dl);
    if (h.failing && h.last_error) box.appendChild(el("div", "last error: " + h.last_error, "statuses"));
    return box;
  }

  function render(view) {
    const who = view.viewer.role === "admin" ? "admin (all hosted authorities)" : "authority " + view.viewer.authority;
    $("who").textContent = "Signed in as " + who;
    $("updated").textContent = "Updated " + when(view.generated_at);
    $("health").replaceChildren(...view.health.map((h) => {
      const li = el("li", h.name + ": " + (h.ok ? "ok" : h.detail), h.ok ? "" : "down");
      li.title = h.detail;
      return li;
    }));
    $("authorities").replaceChildren(...view.authorities.map(card));
    fill("attention", view.attention, attentionRow, view.attention_total);
    fill("awaiting", view.awaiting_receipt, awaitingRow, view.awaiting_receipt_total);
    fill("disputes", view.disputes, disputeRow);
    fill("recent", view.recent, recentRow);
  }

  async function refresh() {
    if (timer) clearTimeout(timer);
    let delay = 5000;
    try {
      const res = await api("/v1/dashboard");
      if (res.status === 401) { signOut("That API key was not accepted."); return; }
      if (!res.ok) throw new Error("HTTP " + res.status);
      const view = await res.json();
      $("login").hidden = true;
      $("board").hidden = false;
      $("logout").hidden = false;
      render(view);
      delay = view.refresh_s * 1000;
    } catch (err) {
      $("updated").textContent = "Connection lost (" + err.message + "); retrying";
    }
    timer = setTimeout(refresh, delay);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("api-key").value.trim());
      $("api-key").value = "";
      $("login-error").textContent = "";
      refresh();
    });
    $("logout").addEventListener("click", () => signOut(""));
    $("dismiss-cancel").addEventListener("click", () => $("dismiss-dialog").close());
    if (sessionStorage.getItem(KEY)) refresh();
  });
})();

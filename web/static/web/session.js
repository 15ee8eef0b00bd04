// The session page. The session code comes from the URL fragment (then it is dropped from the
// address bar) or this tab's sessionStorage; it is sent only as a bearer token and as the
// websocket's first message, never in a URL.
"use strict";

(function () {
  const SESSION_KEY = "lab.session";
  const RETRY_MS = [1000, 2000, 5000, 10000, 15000];
  const CLOSE_UNAUTHORISED = 4401;
  const CLOSE_OVER = 4410;
  const BY = { user: "by you", staff: "by the lab staff", system: "by the system" };

  const $ = function (id) { return document.getElementById(id); };
  const root = $("session-root");
  const notices = $("notices");
  const connection = $("connection");
  const extendButton = $("extend-button");
  const cancelButton = $("cancel-button");

  let meta = null; // {code, experiment, pool, reference, extendStep, seq}
  let end = null;
  let ended = false;
  let socket = null;
  let attempts = 0;
  let everConnected = false;
  let timer = null;
  let queue = Promise.resolve();

  // --- storage --------------------------------------------------------------------------

  function readStored() {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    } catch (error) {
      return null;
    }
  }

  function save() {
    try {
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(meta));
    } catch (error) { /* storage off: this page still works until it is reloaded */ }
  }

  function codeFromFragment() {
    const raw = window.location.hash.replace(/^#/, "").replace(/^session=/, "");
    return /^[A-Za-z0-9_-]{10,200}$/.test(raw) ? raw : "";
  }

  // --- showing things -------------------------------------------------------------------

  function showError(text) { Lab.showBox($("session-error"), text); }

  function renderMeta() {
    const title = meta.experiment || "Your session";
    $("session-title").textContent = title;
    document.title = title + " · Remote lab bookings";
    const parts = [];
    if (meta.reference) parts.push("Booking " + meta.reference);
    if (meta.pool) parts.push(meta.pool);
    $("session-meta").textContent = parts.join(" · ");
    if (meta.extendStep === 0) {
      extendButton.hidden = true;
    } else if (meta.extendStep > 0) {
      extendButton.textContent = "Extend by " + Math.round(meta.extendStep / 60) + " minutes";
    }
  }

  function renderUis(uis) {
    const list = $("ui-links");
    list.replaceChildren();
    (uis || []).forEach(function (ui) {
      if (!/^https?:\/\//i.test(ui.url)) return;
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.className = "button primary";
      link.href = ui.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = ui.title + " ";
      const hint = document.createElement("span");
      hint.className = "visually-hidden";
      hint.textContent = "(opens in a new tab)";
      link.appendChild(hint);
      item.appendChild(link);
      list.appendChild(item);
    });
    $("ui-none").hidden = list.children.length > 0;
    $("ui-hint").hidden = list.children.length === 0;
  }

  function setEnd(iso) {
    end = new Date(iso);
    const el = $("session-end");
    el.setAttribute("datetime", iso);
    el.textContent = Lab.format(end, "time");
    tick();
  }

  function tick() {
    if (!end || ended) return;
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    const h = Math.floor(left / 3600);
    const m = Math.floor((left % 3600) / 60);
    const s = String(left % 60).padStart(2, "0");
    $("countdown").textContent = h ? h + ":" + String(m).padStart(2, "0") + ":" + s : m + ":" + s;
    if (left === 0) finish("The booking time is over.");
  }

  function notice(kind, text, link) {
    const item = document.createElement("li");
    item.className = "notice notice-" + kind;
    item.appendChild(document.createTextNode(text));
    if (link) {
      item.appendChild(document.createTextNode(" "));
      const a = document.createElement("a");
      a.href = link.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = link.text;
      item.appendChild(a);
    }
    notices.prepend(item);
    $("notices-empty").hidden = true;
  }

  function finish(text) {
    if (ended) return;
    ended = true;
    root.dataset.state = "ended";
    window.clearInterval(timer);
    $("session-live").hidden = true;
    $("session-ended-text").textContent = text;
    $("session-ended").hidden = false;
    connection.textContent = "The session is over.";
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  }

  // --- events ---------------------------------------------------------------------------

  function apply(event) {
    if (typeof event.seq === "number" && event.seq > (meta.seq || 0)) {
      meta.seq = event.seq;
      save();
    }
    switch (event.type) {
      case "session.extended":
        notice("info", "Extended: the session now ends at " +
          Lab.format(new Date(event.end), "time") + ".");
        if (!ended) setEnd(event.end);
        break;
      case "session.cancelled":
        notice("warn", "The session was cancelled " + (BY[event.by] || "") +
          (event.reason && event.reason !== "cancelled" ? ": " + event.reason : "") + ".");
        finish("The session was cancelled " + (BY[event.by] || "") + ".");
        break;
      case "session.ending": {
        const minutes = Math.max(1, Math.round(event.seconds_left / 60));
        notice("warn", minutes + " minute" + (minutes === 1 ? "" : "s") + " left.");
        break;
      }
      case "session.ended":
        notice("info", "The session has ended.");
        finish("The booking is over.");
        break;
      case "message":
        notice(event.level === "warning" || event.level === "error" ? "warn" : "info",
          "Message from " + (event.from || "the lab staff") + ": " + event.text);
        break;
      case "survey":
        if (/^https?:\/\//i.test(event.url)) {
          notice("info", "How did it go?", { url: event.url, text: "Answer a short survey" });
        }
        break;
      default:
        break;
    }
  }

  async function replay() {
    const after = meta.seq || 0;
    const result = await Lab.api("GET", "/api/v1/session/events/?after=" + after,
      { bearer: meta.code });
    if (!result.ok) return;
    result.data.events.forEach(function (event) {
      if (event.seq > (meta.seq || 0)) apply(event);
    });
  }

  // The current state: end, links with fresh tokens; or why the session is over.
  async function refresh() {
    const result = await Lab.api("GET", "/api/v1/session/", { bearer: meta.code });
    if (result.ok) {
      setEnd(result.data.end);
      renderUis(result.data.uis);
      if (!ended) $("session-live").hidden = false;
      root.dataset.state = ended ? "ended" : "live";
      return true;
    }
    if (result.status === 410) {
      finish(Lab.errorText(result));
    } else if (result.status === 401) {
      showError("This session link is not valid. Start the session again from My bookings.");
      finish("This session link is not valid.");
    } else {
      showError(Lab.errorText(result));
    }
    return false;
  }

  // Catch up after a load, a reconnect or a gap: the missed events in order, then the state.
  async function catchUp() {
    await replay();
    if (!ended) await refresh();
  }

  function enqueue(work) {
    queue = queue.then(work).catch(function () { /* shown by the step itself */ });
    return queue;
  }

  function onMessage(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    enqueue(async function () {
      if (event.type === "ready") {
        connection.textContent = "Live notices are on.";
        const reconnected = everConnected;
        everConnected = true;
        attempts = 0;
        if (reconnected || event.seq > (meta.seq || 0)) await catchUp();
        return;
      }
      if (typeof event.seq !== "number" || event.seq <= (meta.seq || 0)) return;
      if (event.seq > (meta.seq || 0) + 1) {
        // A gap: something was missed. Catch up from the record, in order.
        await catchUp();
        return;
      }
      apply(event);
    });
  }

  function connect() {
    if (ended) return;
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/session/");
    socket.addEventListener("open", function () {
      socket.send(JSON.stringify({ type: "auth", session: meta.code }));
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function (event) {
      socket = null;
      if (ended) return;
      if (event.code === CLOSE_OVER) {
        enqueue(catchUp);
        return;
      }
      if (event.code === CLOSE_UNAUTHORISED) {
        connection.textContent = "Live notices are off: this session link is not valid.";
        return;
      }
      const wait = RETRY_MS[Math.min(attempts, RETRY_MS.length - 1)];
      attempts += 1;
      connection.textContent = "Connection lost; reconnecting…";
      window.setTimeout(connect, wait);
    });
  }

  // --- buttons --------------------------------------------------------------------------

  extendButton.addEventListener("click", async function () {
    showError("");
    extendButton.disabled = true;
    const result = await Lab.api("POST", "/api/v1/session/extend/", { bearer: meta.code, body: {} });
    extendButton.disabled = false;
    if (!result.ok) {
      showError(Lab.errorText(result));
      return;
    }
    setEnd(result.data.end);
    renderUis(result.data.uis);
  });

  cancelButton.addEventListener("click", async function () {
    if (!window.confirm("End this session now? The experiment disconnects and the booking is " +
      "cancelled.")) return;
    showError("");
    cancelButton.disabled = true;
    const result = await Lab.api("POST", "/api/v1/session/cancel/", { bearer: meta.code });
    cancelButton.disabled = false;
    if (!result.ok) {
      showError(Lab.errorText(result));
      return;
    }
    enqueue(async function () {
      await replay();
      finish("The session was cancelled by you.");
    });
  });

  // --- start ----------------------------------------------------------------------------

  async function init() {
    const fromFragment = codeFromFragment();
    const stored = readStored();
    const code = fromFragment || (stored && stored.code);
    if (!code) {
      root.dataset.state = "missing";
      $("session-missing").hidden = false;
      connection.textContent = "";
      return;
    }
    if (window.location.hash) {
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    meta = stored && stored.code === code ? stored : { code: code };
    // After a reload, rebuild the notices from the start, quietly; new ones are announced.
    meta.seq = 0;
    save();
    renderMeta();
    timer = window.setInterval(tick, 1000);
    await catchUp();
    notices.setAttribute("aria-live", "polite");
    if (!ended) connect();
  }

  init();
})();

// gnomon's dashboard script: the only one (the Content-Security-Policy allows no other).
// - Times: every <time datetime> is shown in the zone chosen in the header (UTC, this
//   browser's, or the deployment's data-zone), with its zone; data-relative ones read
//   "in 4 min" / "3 h ago" with the absolute time on hover.
// - Live parts: elements with data-live and an id are replaced every 2 s by the same
//   elements of the page fetched again, so a page stays current without reloading; not
//   one in use (a control in it focused or typed in).
// - Logs: an element with data-log-stream follows that URL's server-sent events, adding
//   each line as text (never as markup), once, until the server sends "end".
// - Forms with data-confirm ask before they post.
"use strict";

(function () {
  const ZONE_KEY = "gnomon-zone";
  const LIVE_EVERY_MS = 2000;

  function zoneMode() {
    try {
      return localStorage.getItem(ZONE_KEY) || "utc";
    } catch (e) {
      return "utc";
    }
  }

  function zoneFor(element, mode) {
    if (mode === "local") return undefined;
    if (mode === "deployment" && element.dataset.zone) return element.dataset.zone;
    return "UTC";
  }

  function absolute(date, zone) {
    let parts;
    try {
      parts = new Intl.DateTimeFormat("en-GB", {
        timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
        timeZoneName: "short",
      }).formatToParts(date);
    } catch (e) {  // a zone this browser does not know: UTC, saying so
      return absolute(date, "UTC");
    }
    const part = (type) => (parts.find((p) => p.type === type) || {}).value || "";
    const name = zone && zone !== "UTC" ? zone + " (" + part("timeZoneName") + ")" : part("timeZoneName");
    return part("year") + "-" + part("month") + "-" + part("day") + " " +
      part("hour") + ":" + part("minute") + ":" + part("second") + " " + name;
  }

  function relative(date, now) {
    const seconds = Math.round((date.getTime() - now) / 1000);
    const size = Math.abs(seconds);
    let text;
    if (size < 45) text = size + " s";
    else if (size < 45 * 60) text = Math.round(size / 60) + " min";
    else if (size < 36 * 3600) text = Math.round(size / 3600) + " h";
    else text = Math.round(size / 86400) + " d";
    return seconds >= 0 ? "in " + text : text + " ago";
  }

  function showTimes(root) {
    const mode = zoneMode();
    const now = Date.now();
    for (const element of root.querySelectorAll("time[datetime]")) {
      const date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) continue;
      const text = absolute(date, zoneFor(element, mode));
      if (element.hasAttribute("data-relative")) {
        element.textContent = relative(date, now);
        element.title = text;
      } else {
        element.textContent = text;
      }
      const holder = element.closest("[data-time-title]");  // a mark's title: its state and time
      if (holder) holder.title = holder.dataset.timeTitle + " · " + text;
    }
  }

  function setUpZoneSwitch() {
    const select = document.getElementById("zone-mode");
    if (!select) return;
    select.value = zoneMode();
    select.addEventListener("change", () => {
      try {
        localStorage.setItem(ZONE_KEY, select.value);
      } catch (e) { /* private mode: this page only */ }
      showTimes(document);
    });
  }

  let refreshing = false;

  // Whether a live element is being used, and so is not replaced: a control in it has the
  // keyboard's focus (replacing it would take the focus away), or has been typed in (a
  // reason typed before clicking elsewhere would be lost).
  function inUse(element) {
    if (element.contains(document.activeElement)) return true;
    for (const control of element.querySelectorAll("input, textarea")) {
      if (control.value !== control.defaultValue) return true;
    }
    return false;
  }

  async function refreshLive() {
    const live = document.querySelectorAll("[data-live][id]");
    if (!live.length || refreshing || document.hidden) return;
    refreshing = true;
    try {
      const response = await fetch(location.href, { cache: "no-store", credentials: "same-origin" });
      if (response.redirected && new URL(response.url).pathname === "/login") {
        location.reload();  // the session ended: the login page, and back here after it
        return;
      }
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const element of live) {
        const replacement = fresh.getElementById(element.id);
        if (!replacement || inUse(element)) continue;
        const adopted = document.importNode(replacement, true);
        showTimes(adopted);
        element.replaceWith(adopted);
      }
    } catch (e) {
      // The daemon restarting, the network: the next round tries again.
    } finally {
      refreshing = false;
    }
  }

  function followLogs() {
    for (const element of document.querySelectorAll("[data-log-stream]")) {
      const list = element.querySelector("ol") || element;
      const shown = list.querySelector("li:last-child");
      let lastId = shown ? Number(shown.dataset.id) : 0;
      const source = new EventSource(element.dataset.logStream);
      // The server says when no more lines will come (the run is over, or the session
      // ended): without this the browser would reconnect for ever.
      source.addEventListener("end", () => source.close());
      source.addEventListener("log", (event) => {
        let line;
        try {
          line = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (!(line.id > lastId)) return;  // already shown (a reconnect resends nothing new)
        lastId = line.id;
        const item = document.createElement("li");
        item.className = "log level-" + String(line.level).toLowerCase();
        item.dataset.id = String(line.id);
        const when = document.createElement("time");
        when.setAttribute("datetime", line.timestamp);
        const level = document.createElement("span");
        level.className = "level";
        level.textContent = line.level;
        const message = document.createElement("span");
        message.className = "message";
        message.textContent = line.message;
        item.append(when, " ", level, " ", message);
        showTimes(item);
        const atEnd = element.scrollTop + element.clientHeight >= element.scrollHeight - 4;
        list.append(item);
        if (atEnd) element.scrollTop = element.scrollHeight;
        const empty = element.querySelector(".empty");
        if (empty) empty.remove();
      });
    }
  }

  function confirmForms() {
    document.addEventListener("submit", (event) => {
      const form = event.target;
      if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpZoneSwitch();
    showTimes(document);
    followLogs();
    confirmForms();
    setInterval(refreshLive, LIVE_EVERY_MS);
    setInterval(() => showTimes(document), 15000);
  });
})();

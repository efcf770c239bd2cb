/* wsclose HTML report: reads the data blob, draws the timeline when it is a
   canvas, fills the connection table and shows a connection's details for
   the URL fragment #connection-ID. A row of the blob (src/report/html.rs):
   id minus the previous id minus 1, client host, client port, server, start
   (s from the capture's start), last packet (s from the connection's start),
   outcome * 9 + TCP end kind (0 none, 1 FIN, 2 RST) * 3 + TCP end by (0 -,
   1 client, 2 server), TCP end (s from the connection's start, -1 none), idle
   before the end (-1 none), findings [kind, severity, side, message (-1 left
   out), ts (absent: the TCP end's)], then, when not default: path (-1),
   initiator (0), client close frame [ts, code, reason] (0), server's (0).
   Unpacked below into: 0 id, 1 host, 2 port, 3 server, 4 start, 5 last,
   6 outcome, 7 end kind, 8 end by, 9 end, 10 idle, 11 findings, 12 path,
   13 initiator, 14 client close frame, 15 server close frame. */
(function () {
  "use strict";
  var began = performance.now(), tookMs = -1;
  var D = JSON.parse(document.getElementById("wsclose-data").textContent);
  var prev = 0;
  var C = D.conns.map(function (p) {
    var id = prev + 1 + p[0], k = p[6];
    prev = id;
    return [id, p[1], p[2], p[3], p[4], p[5], Math.floor(k / 9), Math.floor(k / 3) % 3, k % 3, p[7], p[8], p[9],
      p.length > 10 ? p[10] : -1, p[11] || 0, p[12] || 0, p[13] || 0];
  });
  var N = C.length;
  var SIDES = ["", "client", "server"], ENDS = ["none", "FIN", "RST"], SEV = ["info", "warning", "error"];
  var byId = new Map();
  for (var i = 0; i < N; i++) byId.set(C[i][0], i);

  function fmtDur(s) {
    if (s < 0) return "";
    var a = Math.abs(s);
    if (a < 1e-3) return (s * 1e6).toFixed(0) + " µs";
    if (a < 1) return (s * 1e3).toFixed(1) + " ms";
    if (a < 60) return s.toFixed(2) + " s";
    if (a < 3600) return Math.floor(s / 60) + " min " + String(Math.round(s % 60)).padStart(2, "0") + " s";
    return Math.floor(s / 3600) + " h " + String(Math.round((s % 3600) / 60)).padStart(2, "0") + " min";
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function client(r) { return D.hosts[r[1]] + ":" + r[2]; }
  function server(r) { return D.servers[r[3]]; }
  function outcome(r) { return D.outcomes[r[6]]; }
  function tcpEnd(r) { return r[9] >= 0 ? r[9] : r[5]; }
  function barEnd(r) { return Math.max(tcpEnd(r), r[5]); }
  function age(r) { return r[7] ? tcpEnd(r) : -1; }
  function endText(r) { return r[7] ? ENDS[r[7]] + (r[8] ? " by " + SIDES[r[8]] : "") : "none"; }
  function frame(r, k) { return r[k] || 0; }
  /* A finding's time: its own, else the TCP end's. */
  function fts(r, f) { return f.length > 4 ? f[4] : r[9]; }
  function codes(r) {
    var a = frame(r, 14), b = frame(r, 15), out = [];
    if (a) out.push("C " + (a[1] >= 0 ? a[1] : "no code"));
    if (b) out.push("S " + (b[1] >= 0 ? b[1] : "no code"));
    return out.join(", ");
  }
  function findingKinds(r) {
    return r[11].map(function (f) { return D.kinds[f[0]]; }).join(", ");
  }
  function fmtEpoch(t) {
    return new Date(t * 1000).toISOString().replace("T", " ").replace("Z", " UTC");
  }
  var startEl = document.getElementById("start");
  if (startEl) startEl.textContent = "starts " + fmtEpoch(D.start);

  /* Timeline */
  var bars = 0;
  var canvas = document.getElementById("tl-canvas");
  var rowH = 0, gutter = 44, W = 1200;
  function xOf(t) { return gutter + (t / Math.max(D.span, 1e-6)) * (W - gutter - 8); }
  if (canvas) {
    var css = getComputedStyle(document.documentElement);
    var colours = D.outcomes.map(function (o) { return css.getPropertyValue("--" + o).trim() || "#888"; });
    /* The whole capture in one view: past 160 connections, many share a
       pixel row and blend. */
    var axis = 22, height = Math.min(Math.max(N * 4, 200), 440);
    rowH = (height - axis - 4) / Math.max(N, 1);
    canvas.height = height;
    var g = canvas.getContext("2d");
    g.fillStyle = "#fff"; g.fillRect(0, 0, W, height);
    g.font = "11px system-ui, sans-serif"; g.fillStyle = "#5c6670"; g.strokeStyle = "#e6e9ec";
    for (var k = 0; k <= 6; k++) {
      var tx = xOf(D.span * k / 6);
      g.beginPath(); g.moveTo(tx, axis - 4); g.lineTo(tx, height); g.stroke();
      g.textAlign = k === 0 ? "left" : k === 6 ? "right" : "center";
      g.fillText(k === 0 ? "0 s" : "+" + fmtDur(D.span * k / 6), tx, 12);
    }
    var bh = rowH < 1 ? rowH : Math.max(rowH * 0.7, 1);
    for (i = 0; i < N; i++) {
      var r = C[i], y = axis + rowH * i, x0 = xOf(r[4]), x1 = Math.max(xOf(r[4] + barEnd(r)), x0 + 1);
      g.fillStyle = colours[r[6]]; g.fillRect(x0, y, x1 - x0, bh);
      if (r[10] > 0) {
        var te = r[4] + tcpEnd(r), xi = Math.max(xOf(te - r[10]), x0), xe = xOf(te);
        if (xe > xi) { g.fillStyle = "rgba(255,255,255,0.55)"; g.fillRect(xi, y, xe - xi, bh); }
      }
      bars++;
    }
    /* Markers on top: FIN, RST, close frames (faint where rows share
       pixels, so that the outcomes still show). */
    g.globalAlpha = rowH < 1 ? 0.3 : 1;
    for (i = 0; i < N; i++) {
      r = C[i]; y = axis + rowH * i;
      if (r[7] && r[9] >= 0) {
        g.fillStyle = r[7] === 2 ? "#c0007a" : "#111";
        var w = rowH < 1 ? 1 : r[7] === 2 ? 3 : 2;
        g.fillRect(xOf(r[4] + r[9]) - w / 2, y - (rowH >= 3 ? 1 : 0), w, bh + (rowH >= 3 ? 2 : 0));
      }
      [14, 15].forEach(function (k) {
        var f = frame(r, k);
        if (!f) return;
        g.fillStyle = k === 14 ? "#fff" : "#111";
        var s = rowH < 1 ? 1 : Math.max(bh, 2);
        g.fillRect(xOf(r[4] + f[0]) - s / 2, y + bh / 2 - s / 2, s, s);
      });
    }
    g.globalAlpha = 1;
    canvas.dataset.drawn = String(bars);
    canvas.addEventListener("click", function (ev) {
      var rect = canvas.getBoundingClientRect();
      var yy = (ev.clientY - rect.top) * (canvas.height / rect.height);
      var idx = Math.floor((yy - axis) / rowH);
      if (idx >= 0 && idx < N) location.hash = "connection-" + C[idx][0];
    });
    canvas.title = "click a row for its connection";
  } else {
    var svgBars = document.querySelectorAll("#tl-svg [data-connection]");
    bars = svgBars.length;
    document.getElementById("timeline").addEventListener("click", function (ev) {
      var b = ev.target.closest("[data-connection]");
      if (b) location.hash = "connection-" + b.dataset.connection;
    });
  }

  /* Table */
  var tbody = document.querySelector("#conn-table tbody");
  var LIMIT = 500, sortKey = "id", sortDir = 1, shownRows = 0;
  var keyFns = {
    id: function (r) { return r[0]; },
    client: function (r) { return client(r); },
    server: function (r) { return server(r); },
    outcome: function (r) { return outcome(r); },
    start: function (r) { return r[4]; },
    age: function (r) { return age(r); },
    end: function (r) { return endText(r); },
    idle: function (r) { return r[10]; },
    codes: function (r) { return codes(r); },
    findings: function (r) { return r[11].length * 1000 + (r[11][0] ? 100 - r[11][0][0] : 0); }
  };
  var filterEl = document.getElementById("filter"), outcomeEl = document.getElementById("outcome-filter"),
    onlyEl = document.getElementById("findings-only");
  function matches(r, q, o, only) {
    if (o && outcome(r) !== o) return false;
    if (only && !r[11].length) return false;
    if (!q) return true;
    var hay = ("#" + r[0] + " " + client(r) + " " + server(r) + " " + outcome(r) + " " + endText(r) + " " +
      findingKinds(r) + " " + (r[12] >= 0 ? D.strings[r[12]] : "")).toLowerCase();
    return q.split(/\s+/).every(function (w) { return w === String(r[0]) || hay.indexOf(w) >= 0; });
  }
  function renderTable() {
    var q = filterEl.value.trim().toLowerCase(), o = outcomeEl.value, only = onlyEl.checked;
    var list = [];
    for (var i = 0; i < N; i++) if (matches(C[i], q, o, only)) list.push(C[i]);
    var f = keyFns[sortKey];
    list.sort(function (a, b) {
      var x = f(a), y = f(b);
      return (x < y ? -1 : x > y ? 1 : a[0] - b[0]) * sortDir;
    });
    var html = [];
    var shown = list.slice(0, LIMIT);
    shown.forEach(function (r) {
      var sel = location.hash === "#connection-" + r[0] ? " class=\"selected\"" : "";
      html.push("<tr data-id=\"" + r[0] + "\"" + sel + "><td class=\"num\">" + r[0] + "</td><td>" + esc(client(r)) +
        "</td><td>" + esc(server(r)) + "</td><td><span class=\"pill o-" + outcome(r) + "\">" + outcome(r) +
        "</span></td><td class=\"num\">+" + fmtDur(r[4]) + "</td><td class=\"num\">" + fmtDur(age(r)) +
        "</td><td>" + endText(r) + "</td><td class=\"num\">" + fmtDur(r[10]) + "</td><td>" + codes(r) +
        "</td><td>" + esc(findingKinds(r)) + "</td></tr>");
    });
    tbody.innerHTML = html.join("");
    shownRows = shown.length;
    document.getElementById("table-count").textContent = list.length + " of " + N + " connections";
    document.getElementById("table-more").textContent = list.length > LIMIT ?
      "Showing the first " + LIMIT + " of " + list.length + "; sort or filter to see others." : "";
    status();
  }
  document.querySelectorAll("#conn-table th").forEach(function (th) {
    th.addEventListener("click", function () {
      var k = th.dataset.sort;
      sortDir = k === sortKey ? -sortDir : 1;
      sortKey = k;
      document.querySelectorAll("#conn-table th").forEach(function (t) { t.classList.remove("asc", "desc"); });
      th.classList.add(sortDir > 0 ? "asc" : "desc");
      renderTable();
    });
  });
  [filterEl, outcomeEl, onlyEl].forEach(function (el) { el.addEventListener("input", renderTable); });
  tbody.addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr[data-id]");
    if (tr) location.hash = "connection-" + tr.dataset.id;
  });

  /* Details */
  var details = document.getElementById("details");
  function miniTimeline(r) {
    var end = Math.max(barEnd(r), 1e-6), w = 420, x = function (t) { return 10 + t / end * (w - 20); };
    var s = "<svg width=\"" + w + "\" height=\"54\" viewBox=\"0 0 " + w + " 54\">";
    s += "<rect class=\"o-" + outcome(r) + "\" x=\"10\" y=\"14\" width=\"" + (w - 20) + "\" height=\"14\"/>";
    if (r[10] > 0) {
      var te = tcpEnd(r), xi = Math.max(x(te - r[10]), 10);
      s += "<rect class=\"idle\" x=\"" + xi + "\" y=\"14\" width=\"" + Math.max(x(te) - xi, 0) + "\" height=\"14\"/>";
    }
    if (r[7] && r[9] >= 0) s += "<rect class=\"" + (r[7] === 2 ? "m-rst" : "m-fin") + "\" x=\"" + (x(r[9]) - 1) + "\" y=\"10\" width=\"" + (r[7] === 2 ? 3 : 2) + "\" height=\"22\"/>";
    [14, 15].forEach(function (k) {
      var f = frame(r, k);
      if (f) s += "<circle class=\"" + (k === 14 ? "cf-client" : "cf-server") + "\" cx=\"" + x(f[0]) + "\" cy=\"21\" r=\"5\"/>";
    });
    s += "<text x=\"10\" y=\"46\" font-size=\"11\" fill=\"#5c6670\">0 s</text><text x=\"" + (w - 10) +
      "\" y=\"46\" font-size=\"11\" fill=\"#5c6670\" text-anchor=\"end\">+" + fmtDur(end) + "</text></svg>";
    return s;
  }
  function frameText(r, k) {
    var f = frame(r, k);
    if (!f) return "none";
    return "code " + (f[1] >= 0 ? f[1] : "none") + (f[2] >= 0 ? ", reason \u201c" + esc(D.strings[f[2]]) + "\u201d" : "") +
      " at +" + fmtDur(f[0]);
  }
  function showDetails(id) {
    var i = byId.get(id);
    document.querySelectorAll(".selected").forEach(function (e) { e.classList.remove("selected"); });
    if (i === undefined) { details.hidden = true; details.removeAttribute("data-shown"); status(); return; }
    var r = C[i];
    var rows = [
      ["client", esc(client(r))], ["server", esc(server(r))],
      ["path", r[12] >= 0 ? esc(D.strings[r[12]]) : "(no upgrade seen)"],
      ["outcome", "<span class=\"pill o-" + outcome(r) + "\">" + outcome(r) + "</span>" + (r[13] ? ", close started by the " + SIDES[r[13]] : "")],
      ["first packet", fmtEpoch(D.start + r[4]) + " (+" + fmtDur(r[4]) + " into the capture)"],
      ["last packet", "+" + fmtDur(r[5])],
      ["TCP end", endText(r) + (r[9] >= 0 ? " at +" + fmtDur(r[9]) : "")],
      ["age at end", fmtDur(age(r)) || "(still open)"],
      ["idle before end", r[10] >= 0 ? fmtDur(r[10]) : "-"],
      ["client close frame", frameText(r, 14)], ["server close frame", frameText(r, 15)]
    ];
    var h = "<button class=\"close-x\" title=\"close\" aria-label=\"close\">×</button><h2>Connection " + r[0] + "</h2>" +
      miniTimeline(r) + "<dl>" + rows.map(function (x) { return "<dt>" + x[0] + "</dt><dd>" + x[1] + "</dd>"; }).join("") + "</dl>";
    h += "<h3>Findings (" + r[11].length + ")</h3>";
    if (!r[11].length) h += "<p class=\"sub\">none</p>";
    r[11].forEach(function (f) {
      h += "<div class=\"finding sev-" + SEV[f[1]] + "\"><b>[" + SEV[f[1]] + "] " + esc(D.kinds[f[0]]) + "</b>" +
        (f[2] ? " (" + SIDES[f[2]] + ")" : "") + (fts(r, f) >= 0 ? " at +" + fmtDur(fts(r, f)) : "") + "<br>" +
        (f[3] >= 0 ? esc(D.strings[f[3]]) : "<i>message left out of this report to keep it small</i>") + "</div>";
    });
    h += "<p class=\"sub\">Its life packet by packet: <code>wsclose analyze " + esc(D.files.join(" ")) + " --connection " + r[0] + "</code></p>";
    details.innerHTML = h;
    details.dataset.shown = String(r[0]);
    details.hidden = false;
    details.querySelector(".close-x").addEventListener("click", function () {
      history.replaceState(null, "", location.pathname + location.search);
      showDetails(-1);
    });
    var bar = document.querySelector("#tl-svg [data-connection=\"" + r[0] + "\"]");
    if (bar) bar.classList.add("selected");
    var tr = tbody.querySelector("tr[data-id=\"" + r[0] + "\"]");
    if (tr) tr.classList.add("selected");
    status();
  }
  function fromHash() {
    var m = /^#connection-(\d+)$/.exec(location.hash);
    showDetails(m ? Number(m[1]) : -1);
  }
  function status() {
    var st = document.getElementById("render-status");
    st.dataset.bars = String(bars);
    st.dataset.rows = String(shownRows);
    if (tookMs >= 0) st.dataset.ms = String(tookMs);
    st.textContent = "rendered: " + bars + " bars, " + shownRows + " table rows" +
      (details.dataset.shown ? ", details of connection " + details.dataset.shown : "");
  }
  window.addEventListener("hashchange", fromHash);
  renderTable();
  fromHash();
  /* The time the script took to draw the page (layout aside). */
  tookMs = Math.round(performance.now() - began);
  status();
})();

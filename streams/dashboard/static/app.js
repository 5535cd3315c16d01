// shipguard dashboard: draws the server's snapshots and feed batches (no framework, no build step).
// Every value from the server goes in through textContent, never as HTML.
(function () {
  "use strict";

  var TZ = "Asia/Shanghai";
  var FEED_MAX = 200;
  var STAGE_ZH = { WARNING: "预警", VIOLATION: "违规", RESOLVED: "解除", APPROVED: "同意", REJECTED: "驳回" };
  var PLATFORM = { douyin: "抖音", taobao: "淘宝", tiktok: "TikTok" };

  // The token: from ?token= once, then kept for this tab only and taken out of the address bar.
  var params = new URLSearchParams(location.search);
  var token = params.get("token") || sessionStorage.getItem("shipguard-token") || "";
  if (params.has("token")) {
    sessionStorage.setItem("shipguard-token", token);
    params.delete("token");
    var rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  var query = token ? "?token=" + encodeURIComponent(token) : "";

  var $ = function (id) { return document.getElementById(id); };
  var timeFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: TZ, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23"
  });

  function fields(date) {
    var out = {};
    timeFormat.formatToParts(date).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }

  function when(iso) {
    if (!iso) return "–";
    var f = fields(new Date(iso));
    return f.month + "-" + f.day + " " + f.hour + ":" + f.minute;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function add(parent) {
    for (var i = 1; i < arguments.length; i++) if (arguments[i]) parent.appendChild(arguments[i]);
    return parent;
  }

  function cell(text, className) {
    var td = el("td", className, text);
    if (text === 0) td.classList.add("zero");
    return td;
  }

  function num(value) { return Number(value || 0).toLocaleString("en-US"); }

  function duration(seconds) {
    var s = Math.abs(seconds);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    var text = d > 0 ? d + "d " + h + "h" : h > 0 ? h + "h " + m + "m" : m + "m";
    return seconds < 0 ? "overdue " + text : text;
  }

  function leftClass(seconds) {
    if (seconds < 0) return "left left-over";
    if (seconds < 3600) return "left left-urgent";
    if (seconds < 6 * 3600) return "left left-soon";
    return "left left-later";
  }

  function setStatus(text, tone) {
    var pill = $("status");
    pill.textContent = text;
    pill.className = "pill pill-" + tone;
  }

  function emptyRow(tbody, columns, text) {
    var tr = add(el("tr", "empty"), el("td", null, text));
    tr.firstChild.colSpan = columns;
    tbody.appendChild(tr);
  }

  // -- the state snapshot -------------------------------------------------------------------

  var last = null;       // the latest snapshot
  var receivedAt = 0;    // when it came (browser clock): time left ticks on from there in wall mode

  function render(state) {
    last = state;
    receivedAt = Date.now();
    var status = state.status || "live";
    setStatus(status === "live" ? "● live" : status === "catching up" ? "catching up…" : status,
      status === "live" ? "green" : status === "catching up" ? "amber" : "grey");
    $("window").textContent = "last " + state.window_hours + " h (since " + when(state.since) + ")";
    $("clock").textContent = state.clock === "event"
      ? "event time · stream at " + when(state.clock_now)
      : "wall · " + when(state.clock_now);
    $("records").textContent = num(state.records);

    var t = state.totals;
    $("kpi-open").textContent = num(t.open_warnings);
    $("kpi-violations").textContent = num(t.violations);
    $("kpi-warnings").textContent = num(t.warnings);
    $("kpi-resolved").textContent = num(t.resolved);
    $("kpi-shop-alerts").textContent = num(t.open_shop_alerts);
    $("kpi-approved").textContent = num(t.approved);
    $("kpi-rejected").textContent = num(t.rejected);
    $("kpi-fault").textContent = num(t.merchant_fault);
    $("kpi-violations-note").textContent = "in the last " + state.window_hours + " h";

    renderOpen(state.open_warnings, t.open_warnings);
    renderShops(state.shops);
    renderRules(state.rules);
    renderOutcomes(state.outcomes, state.shop_alert_counts);
    drawChart(state.chart);
    if (state.feed) replaceFeed(state.feed);
    var dropped = state.dropped || {};
    var notes = Object.keys(dropped).sort().map(function (k) { return k.replace(/_/g, " ") + ": " + dropped[k]; });
    $("dropped").textContent = notes.length ? "Skipped — " + notes.join(" · ") : "";
  }

  function renderOpen(rows, total) {
    var tbody = document.querySelector("#open-warnings tbody");
    tbody.textContent = "";
    $("open-count").textContent = rows.length < total ? "showing " + rows.length + " of " + num(total) : "";
    if (!rows.length) return emptyRow(tbody, 5, "No open warnings 当前无待处理预警");
    rows.forEach(function (w) {
      var left = el("span", leftClass(w.seconds_left), duration(w.seconds_left));
      left.dataset.seconds = w.seconds_left;
      var rule = add(el("td"), el("span", null, w.name), el("span", "rule-en", w.rule));
      var order = add(el("td"), el("span", "mono", w.order_id));
      order.title = w.message;
      var sev = el("span", "badge b-" + w.severity, w.severity);
      add(tbody, add(el("tr"), add(el("td"), left), rule, order, cell(w.shop_id, "mono"),
        add(el("td"), el("span", null, when(w.deadline) + " "), sev)));
    });
  }

  // Wall clock: time left keeps counting down between snapshots.
  setInterval(function () {
    if (!last || last.clock !== "wall") return;
    var elapsed = (Date.now() - receivedAt) / 1000;
    document.querySelectorAll("#open-warnings .left").forEach(function (span) {
      var seconds = Number(span.dataset.seconds) - elapsed;
      span.textContent = duration(seconds);
      span.className = leftClass(seconds);
    });
  }, 1000);

  function renderShops(rows) {
    var tbody = document.querySelector("#shops tbody");
    tbody.textContent = "";
    if (!rows.length) return emptyRow(tbody, 5, "No shop at risk 暂无风险店铺");
    rows.forEach(function (s, i) {
      var shop = add(el("td"), el("span", "mono", s.shop_id + " "),
        s.platform ? el("span", "badge b-platform", PLATFORM[s.platform] || s.platform) : null);
      var alerts = el("td");
      if (!s.alerts.length) alerts.appendChild(el("span", "zero", "—"));
      s.alerts.forEach(function (a) {
        var pct = function (v) { return (Number(v) * 100).toFixed(2).replace(/\.?0+$/, "") + "%"; };
        var badge = el("span", "badge b-alert", a.name + " " + pct(a.value) + " > " + pct(a.threshold));
        badge.title = a.metric + ", " + a.orders_in_window + " orders in 7 days";
        add(alerts, badge, document.createTextNode(" "));
      });
      add(tbody, add(el("tr"), cell(i + 1, "num"), shop, alerts, cell(s.violations, "num"),
        cell(s.open_warnings, "num")));
    });
  }

  function renderRules(rows) {
    var tbody = document.querySelector("#rule-counts tbody");
    tbody.textContent = "";
    var max = Math.max.apply(null, rows.map(function (r) { return r.WARNING + r.VIOLATION + r.RESOLVED; }).concat([1]));
    var sums = { WARNING: 0, VIOLATION: 0, RESOLVED: 0 };
    rows.forEach(function (r) {
      var bar = el("div", "bar");
      [["WARNING", "var(--amber)"], ["VIOLATION", "var(--red)"], ["RESOLVED", "var(--green)"]].forEach(function (p) {
        sums[p[0]] += r[p[0]];
        var part = el("i");
        part.style.width = (100 * r[p[0]] / max) + "%";
        part.style.background = p[1];
        bar.appendChild(part);
      });
      var rule = add(el("td"), el("span", null, r.name), el("span", "rule-en", r.rule));
      add(tbody, add(el("tr"), rule, cell(r.WARNING, "num"), cell(r.VIOLATION, "num"), cell(r.RESOLVED, "num"),
        add(el("td"), bar)));
    });
    var foot = document.querySelector("#rule-counts tfoot") || document.querySelector("#rule-counts").appendChild(el("tfoot"));
    foot.textContent = "";
    add(foot, add(el("tr"), el("td", null, "Total 合计"), cell(sums.WARNING, "num"), cell(sums.VIOLATION, "num"),
      cell(sums.RESOLVED, "num"), el("td")));
  }

  function renderOutcomes(rows, metrics) {
    var tbody = document.querySelector("#outcomes tbody");
    tbody.textContent = "";
    rows.forEach(function (o) {
      var code = add(el("td"), el("span", null, o.name), el("span", "rule-en", o.code));
      add(tbody, add(el("tr"), code, cell(o.APPROVED, "num"), cell(o.REJECTED, "num")));
    });
    var mbody = document.querySelector("#metric-counts tbody");
    mbody.textContent = "";
    metrics.forEach(function (m) {
      var name = add(el("td"), el("span", null, m.name), el("span", "rule-en", m.metric));
      add(mbody, add(el("tr"), name, cell(m.WARNING, "num"), cell(m.RESOLVED, "num")));
    });
  }

  // -- the chart: stacked bars per hour, plain SVG ----------------------------------------------

  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = { WARNING: "#e8a317", VIOLATION: "#d64545", RESOLVED: "#2f9e6a" };

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (value <= 4) return 4;
    var step = Math.pow(10, Math.floor(Math.log10(value)));
    var candidates = [1, 2, 2.5, 5, 10].map(function (f) { return f * step; });
    for (var i = 0; i < candidates.length; i++) if (candidates[i] >= value) return candidates[i];
    return 10 * step;
  }

  function drawChart(chart) {
    var box = $("chart");
    var width = Math.max(box.clientWidth, 320), height = box.clientHeight || 230;
    var pad = { left: 40, right: 10, top: 10, bottom: 34 };
    var root = svg("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none" });
    var series = chart.series, n = series.WARNING.length;
    if (!n) {
      root.appendChild(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", "class": "empty" },
        "No warnings yet 暂无预警"));
      box.replaceChildren(root);
      return;
    }
    var totals = [];
    for (var i = 0; i < n; i++) totals.push(series.WARNING[i] + series.VIOLATION[i] + series.RESOLVED[i]);
    var top = niceMax(Math.max.apply(null, totals));
    var plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
    var y = function (v) { return pad.top + plotH - (v / top) * plotH; };
    for (var g = 0; g <= 4; g++) {
      var value = top * g / 4, gy = y(value);
      root.appendChild(svg("line", { x1: pad.left, x2: width - pad.right, y1: gy, y2: gy, "class": "grid-line" }));
      root.appendChild(svg("text", { x: pad.left - 6, y: gy + 4, "text-anchor": "end", "class": "axis" },
        Number.isInteger(value) ? String(value) : value.toFixed(1)));
    }
    var slot = plotW / n, barW = Math.max(1, slot * 0.78);
    var start = new Date(chart.start).getTime(), step = chart.bucket_seconds * 1000;
    var labelEvery = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plotW / 64))));
    var lastDay = null;
    for (i = 0; i < n; i++) {
      var at = new Date(start + i * step), x = pad.left + i * slot + (slot - barW) / 2;
      var group = svg("g");
      var base = 0;
      ["RESOLVED", "VIOLATION", "WARNING"].forEach(function (stage) {
        var v = series[stage][i];
        if (!v) return;
        group.appendChild(svg("rect", { x: x, y: y(base + v), width: barW, height: y(base) - y(base + v), fill: COLORS[stage], rx: Math.min(2, barW / 3) }));
        base += v;
      });
      group.appendChild(svg("title", {}, when(at.toISOString()) + " — 预警 " + series.WARNING[i] + " · 违规 " +
        series.VIOLATION[i] + " · 解除 " + series.RESOLVED[i]));
      root.appendChild(group);
      var f = fields(at), day = f.month + "-" + f.day;
      if (i % labelEvery === 0) {
        var cx = pad.left + i * slot + slot / 2;
        root.appendChild(svg("text", { x: cx, y: height - pad.bottom + 14, "text-anchor": "middle", "class": "axis" }, f.hour + ":00"));
        if (day !== lastDay) {
          root.appendChild(svg("text", { x: cx, y: height - pad.bottom + 28, "text-anchor": "middle", "class": "axis" }, day));
          lastDay = day;
        }
      }
    }
    box.replaceChildren(root);
  }

  window.addEventListener("resize", function () { if (last) drawChart(last.chart); });

  // -- the live feed ------------------------------------------------------------------------------

  function feedItem(item, fresh) {
    var li = el("li", fresh ? "fresh" : null);
    var badge = el("span", "badge b-" + item.stage, STAGE_ZH[item.stage] || item.stage);
    var what = add(el("div", "what"), badge, document.createTextNode(" "), el("b", null, item.label_zh),
      el("span", "code", item.label));
    var who = el("div", "who", "shop " + item.shop_id + (item.order_id ? " · order " + item.order_id : "") +
      (item.refund ? " · refund " + item.refund : ""));
    add(li, el("span", "when", when(item.at)), add(el("div"), what, el("div", "text", item.text), who));
    li.dataset.seq = item.seq;
    if (fresh) {
      li.dataset.live = "1";  // came through a feed event, not a snapshot
      li.addEventListener("animationend", function () { li.classList.remove("fresh"); });
    }
    return li;
  }

  function replaceFeed(items) {
    var list = $("feed");
    list.textContent = "";
    items.forEach(function (item) { list.appendChild(feedItem(item, false)); });
    if (!items.length) list.appendChild(el("li", "empty-feed", "Waiting for records… 等待数据"));
  }

  function prependFeed(items) {
    var list = $("feed");
    var placeholder = list.querySelector(".empty-feed");
    if (placeholder) placeholder.remove();
    items.forEach(function (item) { list.insertBefore(feedItem(item, true), list.firstChild); });
    while (list.children.length > FEED_MAX) list.removeChild(list.lastChild);
  }

  // -- the connection -------------------------------------------------------------------------------

  var source = new EventSource("events" + query);
  source.addEventListener("state", function (e) { render(JSON.parse(e.data)); });
  source.addEventListener("feed", function (e) { prependFeed(JSON.parse(e.data)); });
  source.onerror = function () { setStatus("reconnecting…", "red"); };
})();

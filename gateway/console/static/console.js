// The console's only script: stacked bar charts drawn as SVG from the tables under them,
// the copy button of a new key, and the live refresh of the deployments page. No
// library, no build step; text goes into the page as text (textContent), never as markup.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";

  function svg(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function niceStep(max) {
    if (max <= 0) { return 1; }
    var raw = max / 4, power = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (raw <= steps[i] * power) { return steps[i] * power; }
    }
    return 10 * power;
  }

  function short(value) {
    if (value >= 1e9) { return (value / 1e9).toFixed(1) + "G"; }
    if (value >= 1e6) { return (value / 1e6).toFixed(1) + "M"; }
    if (value >= 1e3) { return (value / 1e3).toFixed(1) + "k"; }
    return value >= 1 || value === 0 ? String(Math.round(value * 100) / 100) : value.toPrecision(2);
  }

  function drawChart(holder) {
    var table = document.getElementById(holder.getAttribute("data-chart"));
    if (!table || !table.tHead || !table.tBodies.length) { return; }
    var head = Array.prototype.slice.call(table.tHead.rows[0].cells, 1, -1);
    var stacks = head.map(function (c) { return c.textContent; });
    var rows = Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      var cells = Array.prototype.slice.call(r.cells, 1, -1);
      return { label: r.cells[0].textContent,
               values: cells.map(function (c) { return parseFloat(c.getAttribute("data-value")) || 0; }) };
    });
    if (!rows.length || !stacks.length) { return; }
    var totals = rows.map(function (r) { return r.values.reduce(function (a, b) { return a + b; }, 0); });
    var step = niceStep(Math.max.apply(null, totals));
    var top = Math.max(step, Math.ceil(Math.max.apply(null, totals) / step) * step);
    var W = 960, H = 280, left = 64, right = 8, above = 10, below = 30;
    var plotW = W - left - right, plotH = H - above - below;
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "bars", focusable: "false" });
    for (var t = 0; t <= top + step / 2; t += step) {
      var y = above + plotH - (t / top) * plotH;
      svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }, chart);
      svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, chart).textContent = short(t);
    }
    var slot = plotW / rows.length, width = Math.max(1, slot * 0.78);
    var every = Math.ceil(rows.length / 12);
    rows.forEach(function (row, i) {
      var x = left + i * slot + (slot - width) / 2, base = above + plotH;
      row.values.forEach(function (value, s) {
        if (value <= 0) { return; }
        var h = (value / top) * plotH;
        base -= h;
        var bar = svg("rect", { x: x, y: base, width: width, height: h, class: "s" + (s % 10) }, chart);
        svg("title", {}, bar).textContent = row.label + ", " + stacks[s] + ": " + short(value);
      });
      if (i % every === 0) {
        var label = row.label.length === 10 ? row.label.slice(5) : row.label;
        svg("text", { x: left + i * slot + slot / 2, y: H - 10, "text-anchor": "middle", class: "tick" }, chart)
          .textContent = label;
      }
    });
    holder.appendChild(chart);
    var legend = document.createElement("ul");
    legend.className = "legend";
    stacks.forEach(function (name, s) {
      var item = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch s" + (s % 10);
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(name));
      legend.appendChild(item);
    });
    holder.appendChild(legend);
  }

  function copy(event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) { return; }
    var id = button.getAttribute("data-copy");
    var input = document.getElementById(id);
    var said = document.querySelector("[data-copied-for='" + id + "']");
    input.select();
    var done = function () { if (said) { said.textContent = "Copied."; } };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () {
        if (document.execCommand("copy")) { done(); }
      });
    } else if (document.execCommand("copy")) {
      done();
    }
  }

  function live(holder) {
    var url = holder.getAttribute("data-live");
    var every = parseInt(holder.getAttribute("data-every"), 10) || 3000;
    var status = document.getElementById("live-status");
    var say = function (text) { if (status.textContent !== text) { status.textContent = text; } };
    var tick = function () {
      if (document.hidden) { window.setTimeout(tick, every); return; }
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { say("Signed out: reload the page to sign in."); return null; }
          if (!r.ok) { throw new Error(String(r.status)); }
          return r.json();
        })
        .then(function (body) {
          if (!body) { return; }
          var changed = false;
          body.data.forEach(function (d) {
            var limits = document.querySelector("[data-limits='" + CSS.escape(d.key) + "']");
            if (limits && limits.textContent !== d.limits) { limits.textContent = d.limits; }
            d.backends.forEach(function (b) {
              var row = document.querySelector("tr[data-row='" + CSS.escape(b.key) + "']");
              if (!row) { changed = true; return; }
              row.className = b.tone;
              Object.keys(b.cells).forEach(function (field) {
                var cell = row.querySelector("[data-field='" + field + "']");
                if (cell && cell.textContent !== b.cells[field]) { cell.textContent = b.cells[field]; }
              });
            });
          });
          holder.setAttribute("data-refreshed", String(Date.now()));
          say(changed ? "The deployments changed: reload the page to see them all." : "");
          window.setTimeout(tick, every);
        })
        .catch(function () {
          say("The gateway did not answer; trying again.");
          window.setTimeout(tick, every);
        });
    };
    window.setTimeout(tick, every);
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), drawChart);
    document.addEventListener("click", copy);
    var holder = document.querySelector("[data-live]");
    if (holder) { live(holder); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());

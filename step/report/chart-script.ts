/**
 * The report page's only script (plain browser JS, inlined; no libraries): draws the loss chart
 * and the two stacked memory charts as SVG from the JSON in <script id="report-data">. When done
 * it sets data-charts-drawn on <body> to the number of charts drawn (the test reads it through
 * headless Chromium); on an error it sets data-chart-error and shows the message on the page.
 * Tooltips are SVG <title>s. Kept free of template literals so it can live in a TS string.
 */
export const CHART_SCRIPT = String.raw`
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function tip(e, text) { el('title', {}, e, text); return e; }
  function mib(b) {
    if (b >= 1048576) return (b / 1048576).toFixed(b >= 104857600 ? 0 : 2) + ' MiB';
    if (b >= 1024) return (b / 1024).toFixed(1) + ' KiB';
    return b + ' B';
  }
  function tokensFmt(t) {
    if (t >= 1e6) return (t / 1e6).toFixed(t >= 1e7 ? 0 : 1) + 'M';
    if (t >= 1e3) return (t / 1e3).toFixed(t >= 1e4 ? 0 : 1) + 'k';
    return String(t);
  }
  // 'Nice' ticks: 1, 2 or 5 times a power of ten, about n of them; cover: extend to a tick >= hi.
  function ticks(lo, hi, n, cover) {
    var span = (hi - lo) || 1, raw = span / Math.max(1, n), p = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (m) { return m * p; }).find(function (s) { return span / s <= n; }) || 10 * p;
    var out = [], end = cover ? Math.ceil(hi / step - 1e-9) * step : hi;
    for (var v = Math.ceil(lo / step) * step; v <= end + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }
  function frame(svg, w, h, m, xTicks, yTicks, x, y, xFmt, yFmt, xLabel, yLabel) {
    var g = el('g', { class: 'axes' }, svg);
    yTicks.forEach(function (v) {
      el('line', { x1: m.l, x2: w - m.r, y1: y(v), y2: y(v), class: 'grid' }, g);
      el('text', { x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, g, yFmt(v));
    });
    xTicks.forEach(function (v) {
      el('line', { x1: x(v), x2: x(v), y1: h - m.b, y2: h - m.b + 4, class: 'axis' }, g);
      el('text', { x: x(v), y: h - m.b + 17, 'text-anchor': 'middle', class: 'tick' }, g, xFmt(v));
    });
    el('line', { x1: m.l, x2: w - m.r, y1: h - m.b, y2: h - m.b, class: 'axis' }, g);
    el('line', { x1: m.l, x2: m.l, y1: m.t, y2: h - m.b, class: 'axis' }, g);
    if (xLabel) el('text', { x: (m.l + w - m.r) / 2, y: h - 4, 'text-anchor': 'middle', class: 'label' }, g, xLabel);
    if (yLabel) el('text', { x: 14, y: (m.t + h - m.b) / 2, 'text-anchor': 'middle', class: 'label', transform: 'rotate(-90 14 ' + ((m.t + h - m.b) / 2) + ')' }, g, yLabel);
  }
  // TensorBoard's smoothing: an exponential moving average, debiased at the start.
  function smooth(points, alpha) {
    var out = [], avg = 0, n = 0;
    points.forEach(function (p) { avg = alpha * avg + (1 - alpha) * p[1]; n++; out.push([p[0], avg / (1 - Math.pow(alpha, n))]); });
    return out;
  }
  function pathOf(points, x, y) {
    return points.map(function (p, i) { return (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(2); }).join('');
  }

  function drawLoss(alpha) {
    var host = document.getElementById('loss-chart');
    host.textContent = '';
    var w = 920, h = 440, m = { l: 60, r: 20, t: 16, b: 44 };
    var svg = el('svg', { viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, role: 'img', 'aria-label': 'loss against tokens' }, host);
    var xs = [0], ys = [];
    data.runs.forEach(function (r) {
      r.smoothed = smooth(r.train, alpha);
      r.train.forEach(function (p) { xs.push(p[0]); });
      r.evals.forEach(function (p) { xs.push(p[0]); ys.push(p[1]); });
      // Leave the first few percent of steps out of the y range: the initial loss would flatten the rest.
      r.smoothed.slice(Math.floor(r.smoothed.length * 0.03)).forEach(function (p) { ys.push(p[1]); });
    });
    if (ys.length === 0) { el('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle', class: 'label' }, svg, 'no training steps logged yet'); return 0; }
    var x0 = 0, x1 = Math.max.apply(null, xs) || 1;
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys), pad = (y1 - y0) * 0.08 || 0.1;
    y0 -= pad; y1 += pad;
    var x = function (v) { return m.l + (v - x0) / (x1 - x0) * (w - m.l - m.r); };
    var y = function (v) { return h - m.b - (v - y0) / (y1 - y0) * (h - m.t - m.b); };
    frame(svg, w, h, m, ticks(x0, x1, 8), ticks(y0, y1, 7), x, y, tokensFmt, function (v) { return v.toFixed(2); }, 'training tokens', 'loss (nats/token)');
    var clip = el('clipPath', { id: 'plot-area' }, el('defs', {}, svg));
    el('rect', { x: m.l, y: m.t, width: w - m.l - m.r, height: h - m.t - m.b }, clip);
    var g = el('g', { 'clip-path': 'url(#plot-area)' }, svg);
    data.runs.forEach(function (r) {
      r.stageTokens.forEach(function (t) {
        tip(el('line', { x1: x(t), x2: x(t), y1: m.t, y2: h - m.b, stroke: r.color, class: 'stage-line' }, g), r.name + ': new stage at ' + t + ' tokens');
      });
      if (r.train.length) {
        el('path', { d: pathOf(r.train, x, y), stroke: r.color, class: 'raw', 'data-run': r.name, 'data-kind': 'train' }, g);
        tip(el('path', { d: pathOf(r.smoothed, x, y), stroke: r.color, class: 'smooth', 'data-run': r.name, 'data-kind': 'smoothed' }, g), r.name + ': train loss (smoothed)');
      }
      if (r.evals.length) {
        el('path', { d: pathOf(r.evals, x, y), stroke: r.color, class: 'val', 'data-run': r.name, 'data-kind': 'validation' }, g);
        r.evals.forEach(function (p) {
          tip(el('circle', { cx: x(p[0]), cy: y(p[1]), r: 3.5, fill: r.color, class: 'val-dot' }, g), r.name + ': validation loss ' + p[1].toFixed(4) + ' at ' + p[0] + ' tokens');
        });
      }
    });
    return 1;
  }

  // Stacked bars: one group per (run, stage), a bar per series (predicted, measured or peak).
  function drawBars(hostId, groups, categories, yLabel) {
    var host = document.getElementById(hostId);
    host.textContent = '';
    if (!groups.length) { host.textContent = 'no memory events logged'; return 0; }
    var barW = 34, gap = 4, groupGap = 22, m = { l: 64, r: 16, t: 14, b: 64 };
    // a group is as wide as its bars or its two label lines, whichever is wider
    var barsWidth = function (g) { return g.bars.length * (barW + gap) - gap; };
    var widths = groups.map(function (g) { return Math.max(barsWidth(g), 7 * Math.max(g.run.length, g.stage.length)); });
    var w = Math.max(420, m.l + m.r + widths.reduce(function (a, b) { return a + b + groupGap; }, 0)), h = 380;
    var svg = el('svg', { viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, role: 'img', 'aria-label': yLabel }, host);
    var total = function (b) { return categories.reduce(function (s, c) { return s + (b.values[c] || 0); }, 0); };
    var top = Math.max.apply(null, groups.map(function (g) { return Math.max.apply(null, g.bars.map(total)); })) || 1;
    // ticks in MiB, so the labels are round numbers
    var yT = ticks(0, top * 1.06 / 1048576, 6, true).map(function (v) { return v * 1048576; }), yMax = yT[yT.length - 1];
    var y = function (v) { return h - m.b - v / yMax * (h - m.t - m.b); };
    frame(svg, w, h, m, [], yT, function () { return 0; }, y, String, function (v) { return +(v / 1048576).toFixed(3) + ''; }, '', yLabel + ' (MiB)');
    var gx = m.l + groupGap / 2;
    groups.forEach(function (grp, gi) {
      grp.bars.forEach(function (b, bi) {
        var bx = gx + (widths[gi] - barsWidth(grp)) / 2 + bi * (barW + gap), acc = 0;
        var g = el('g', { class: 'bar', 'data-group': grp.label, 'data-series': b.series }, svg);
        categories.forEach(function (c) {
          var v = b.values[c] || 0;
          if (v <= 0) return;
          var r = el('rect', { x: bx, y: y(acc + v), width: barW, height: Math.max(0.5, y(acc) - y(acc + v)), fill: data.colors[c], class: b.series === 'predicted' ? 'predicted' : 'measured' }, g);
          tip(r, grp.label + ' - ' + b.series + ' - ' + c + ': ' + v.toLocaleString('en-US') + ' B (' + mib(v) + ')');
          acc += v;
        });
        el('text', { x: bx + barW / 2, y: y(acc) - 4, 'text-anchor': 'middle', class: 'tick small' }, svg, (acc / 1048576).toFixed(acc >= 104857600 ? 0 : 2));
        el('text', { x: bx + barW / 2, y: h - m.b + 13, 'text-anchor': 'middle', class: 'tick small' }, svg, b.short);
      });
      var cx = gx + widths[gi] / 2;
      el('text', { x: cx, y: h - m.b + 30, 'text-anchor': 'middle', class: 'group', fill: grp.color }, svg, grp.run);
      el('text', { x: cx, y: h - m.b + 45, 'text-anchor': 'middle', class: 'tick' }, svg, grp.stage);
      gx += widths[gi] + groupGap;
    });
    return 1;
  }

  function legend(hostId, categories) {
    var host = document.getElementById(hostId);
    categories.forEach(function (c) {
      var s = document.createElement('span');
      s.className = 'key';
      s.innerHTML = '<i style="background:' + data.colors[c] + '"></i>';
      s.appendChild(document.createTextNode(c));
      host.appendChild(s);
    });
  }

  var status = document.getElementById('chart-status');
  try {
    var slider = document.getElementById('smoothing');
    var drawn = drawLoss(+slider.value);
    slider.addEventListener('input', function () { document.getElementById('smoothing-value').textContent = slider.value; drawLoss(+slider.value); });
    drawn += drawBars('state-chart', data.stateGroups, data.stateCategories, 'model-state bytes');
    drawn += drawBars('peak-chart', data.peakGroups, data.peakCategories, 'tracker peak bytes');
    legend('state-legend', data.stateCategories);
    legend('peak-legend', data.peakCategories);
    document.body.setAttribute('data-charts-drawn', String(drawn));
  } catch (e) {
    document.body.setAttribute('data-chart-error', String(e && e.message || e));
    status.textContent = 'chart error: ' + (e && e.stack || e);
    status.className = 'error';
  }
})();
`;

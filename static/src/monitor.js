// Monitor tab: live charts of a workspace's resource use.
//
// htmx's SSE extension owns the EventSource of the monitor stream (it swaps
// the "numbers" and "state" fragments); this script listens on the same
// source for the chart data: "history" (the points the server holds, sent
// on every connect) and "sample" (one a second). The 24 h and 7 d ranges
// are fetched from the stored one-minute points.
(function () {
  'use strict';

  var LIVE_SECONDS = 600;
  var root = document.getElementById('monitor');
  if (!root || !window.uPlot) return;

  function pct(v) {
    return v == null ? '–' : (v < 10 ? v.toFixed(1) : v.toFixed(0)) + '%';
  }
  function bytes(v) {
    if (v == null) return '–';
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    var digits = i === 0 ? (v > 0 && v < 10 && v % 1 ? 1 : 0) : 1;
    return v.toFixed(digits) + ' ' + units[i];
  }
  function rate(v) {
    return v == null ? '–' : bytes(v) + '/s';
  }
  function count(v) {
    return v == null ? '–' : String(Math.round(v));
  }

  // What each chart shows: its series and how a point maps onto them.
  var DEFS = {
    cpu: { series: ['CPU'], get: function (p) { return [p.cpu]; }, fmt: pct },
    mem: {
      series: ['Used', 'Limit'],
      get: function (p) { return [p.mem, p.lim || null]; },
      fmt: bytes,
    },
    net: { series: ['Received', 'Sent'], get: function (p) { return [p.rx, p.tx]; }, fmt: rate },
    blk: { series: ['Read', 'Written'], get: function (p) { return [p.rd, p.wr]; }, fmt: rate },
    pids: { series: ['Processes'], get: function (p) { return [p.pids]; }, fmt: count },
  };
  var COLORS = ['#6366f1', '#f59e0b'];
  // The least each chart's y axis shows, so an idle container's flat line
  // sits at the bottom of a sensible scale instead of filling the chart.
  var FLOOR = { cpu: 5, mem: 1024 * 1024, net: 1024, blk: 1024, pids: 4 };

  function pad(n) {
    return n < 10 ? '0' + n : String(n);
  }
  // Clock times: seconds in the live view, minutes over a day, dates over
  // a week.
  function timeLabels(u, vals) {
    var span = u.scales.x.max - u.scales.x.min;
    return vals.map(function (v) {
      var d = new Date(v * 1000);
      var hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
      if (span <= 3600) return hm + ':' + pad(d.getSeconds());
      if (span <= 2 * 86400) return hm;
      return d.getMonth() + 1 + '/' + d.getDate() + ' ' + hm;
    });
  }

  var mode = 'live';
  var live = []; // points of the live range, oldest first
  var charts = {};

  function dark() {
    return document.documentElement.classList.contains('dark');
  }

  function makeChart(el, name) {
    var def = DEFS[name];
    var axis = {
      stroke: dark() ? '#94a3b8' : '#475569',
      grid: { stroke: dark() ? '#1e293b' : '#e2e8f0', width: 1 },
      ticks: { stroke: dark() ? '#334155' : '#cbd5e1', width: 1 },
    };
    var series = [{}];
    def.series.forEach(function (label, i) {
      series.push({
        label: label,
        stroke: COLORS[i],
        width: 1.5,
        dash: name === 'mem' && i === 1 ? [6, 4] : undefined,
        fill: i === 0 ? COLORS[0] + '22' : undefined,
        value: function (u, v) { return def.fmt(v); },
        spanGaps: false,
      });
    });
    var opts = {
      width: Math.max(200, el.clientWidth),
      height: 180,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, lo, hi) { return [0, Math.max(hi, FLOOR[name] || 1)]; } } },
      axes: [
        Object.assign({}, axis, { values: timeLabels }),
        Object.assign({}, axis, {
          size: 70,
          values: function (u, vals) { return vals.map(def.fmt); },
        }),
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    el.textContent = '';
    return new window.uPlot(opts, emptyData(def), el);
  }

  function emptyData(def) {
    var d = [[]];
    def.series.forEach(function () { d.push([]); });
    return d;
  }

  function toData(def, points) {
    var d = emptyData(def);
    points.forEach(function (p) {
      d[0].push(p.t / 1000);
      def.get(p).forEach(function (v, i) { d[i + 1].push(v); });
    });
    return d;
  }

  function draw(points) {
    Object.keys(charts).forEach(function (name) {
      var c = charts[name];
      c.chart.setData(toData(DEFS[name], points));
      c.el.dataset.points = String(points.length);
    });
  }

  root.querySelectorAll('[data-chart]').forEach(function (el) {
    var name = el.dataset.chart;
    if (!DEFS[name]) return;
    charts[name] = { el: el, chart: makeChart(el, name) };
  });

  window.addEventListener('resize', function () {
    Object.keys(charts).forEach(function (name) {
      var c = charts[name];
      c.chart.setSize({ width: Math.max(200, c.el.clientWidth), height: 180 });
    });
  });

  function trim() {
    if (!live.length) return;
    var cutoff = live[live.length - 1].t - LIVE_SECONDS * 1000;
    var i = 0;
    while (i < live.length && live[i].t < cutoff) i++;
    if (i) live.splice(0, i);
  }

  function parse(ev) {
    try {
      return JSON.parse(ev.data);
    } catch (e) {
      return null;
    }
  }

  // Each (re)connect brings a fresh EventSource and a fresh history.
  root.addEventListener('htmx:sseOpen', function (evt) {
    var source = evt.detail && evt.detail.source;
    if (!source) return;
    source.addEventListener('history', function (ev) {
      var pts = parse(ev);
      if (!Array.isArray(pts)) return;
      // Keep what we have beyond the server's history (it may have
      // restarted), newest wins.
      var since = pts.length ? pts[0].t : Infinity;
      live = live.filter(function (p) { return p.t < since; }).concat(pts);
      trim();
      if (mode === 'live') draw(live);
    });
    source.addEventListener('sample', function (ev) {
      var p = parse(ev);
      if (!p || typeof p.t !== 'number') return;
      if (live.length && p.t <= live[live.length - 1].t) return;
      live.push(p);
      trim();
      if (mode === 'live') draw(live);
    });
  });

  var buttons = root.querySelectorAll('[data-range]');
  function select(range) {
    mode = range;
    buttons.forEach(function (b) {
      var on = b.dataset.range === range;
      b.classList.toggle('range-btn-active', on);
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
    });
    if (range === 'live') {
      draw(live);
      return;
    }
    draw([]);
    fetch(root.dataset.historyUrl + '?range=' + encodeURIComponent(range), {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (body) {
        if (mode !== range) return;
        draw(body.points || []);
        if (!(body.points || []).length && window.aicodeToast) {
          window.aicodeToast('info', 'No stored figures for this range yet: points are recorded once a minute while the workspace runs.');
        }
      })
      .catch(function (e) {
        if (window.aicodeToast) window.aicodeToast('error', 'Could not load the history: ' + e.message);
      });
  }
  buttons.forEach(function (b) {
    b.addEventListener('click', function () { select(b.dataset.range); });
  });
})();

// The Logs tab: a container's output streamed over server-sent events, and
// the workspace's event feed. Lines are added as text nodes, never as
// markup. Event feed entries arrive as HTML rendered (and escaped) by the
// server's templates.
(function () {
  'use strict';

  var root = document.querySelector('[data-logs]');
  if (!root) return;

  // Bounds: lines kept on screen, and lines held while paused.
  var MAX_LINES = 5000;
  var MAX_HELD = 5000;
  var MAX_EVENTS = 100;

  var form = root.querySelector('[data-logs-options]');
  var out = root.querySelector('[data-logs-output]');
  var empty = root.querySelector('[data-logs-empty]');
  var statusEl = root.querySelector('[data-logs-status]');
  var countEl = root.querySelector('[data-logs-count]');
  var tailIn = root.querySelector('[data-logs-tail]');
  var followIn = root.querySelector('[data-logs-follow]');
  var tsIn = root.querySelector('[data-logs-timestamps]');
  var filterIn = root.querySelector('[data-logs-filter]');
  var pauseBtn = root.querySelector('[data-logs-pause]');
  var clearBtn = root.querySelector('[data-logs-clear]');
  var feed = document.querySelector('[data-events-feed]');

  var es = null;
  var retry = 0;
  var retryTimer = null;
  var lastTime = ''; // time of the newest line received, for resuming
  var lines = 0; // line elements on screen
  var paused = false;
  var held = [];
  var heldDropped = 0;
  var ended = false;
  var serverFilter = filterIn.value; // the q the stream was opened with

  function status(text, state) {
    statusEl.textContent = text;
    statusEl.dataset.state = state || '';
  }

  function showEmpty(text) {
    if (!empty) return;
    empty.textContent = text;
    empty.hidden = lines > 0;
  }

  function updateCount() {
    var hidden = out.querySelectorAll('[data-line][hidden]').length;
    var text = lines === 1 ? '1 line' : lines + ' lines';
    if (hidden > 0) text += ' (' + hidden + ' hidden by the filter)';
    countEl.textContent = lines > 0 ? text : '';
  }

  // ---------------------------------------------------------------------
  // Lines

  function matches(text) {
    var f = filterIn.value.toLowerCase();
    return f === '' || text.toLowerCase().indexOf(f) >= 0;
  }

  function lineEl(l) {
    var el = document.createElement('div');
    el.dataset.line = '';
    el.dataset.stream = l.s === 'err' ? 'stderr' : 'stdout';
    el.className =
      l.s === 'err'
        ? 'whitespace-pre-wrap break-all border-l-2 border-rose-500 pl-1.5 text-rose-300'
        : 'whitespace-pre-wrap break-all border-l-2 border-transparent pl-1.5';
    if (l.t) {
      var ts = document.createElement('time');
      ts.className = 'mr-2 select-none text-slate-500 group-data-[ts=off]:hidden';
      ts.dateTime = l.t;
      ts.title = l.t;
      ts.textContent = l.t.slice(0, 10) + ' ' + l.t.slice(11, 23);
      el.appendChild(ts);
    }
    var text = document.createElement('span');
    text.dataset.text = '';
    text.textContent = l.l || '';
    el.appendChild(text);
    if (l.x) {
      var cut = document.createElement('span');
      cut.className = 'ml-2 select-none italic text-amber-300';
      cut.textContent = '[line cut: too long]';
      el.appendChild(cut);
    }
    el.hidden = !matches(l.l || '');
    return el;
  }

  function markerEl(text) {
    var el = document.createElement('div');
    el.dataset.marker = '';
    el.className = 'my-1 select-none border-y border-slate-700 py-0.5 text-center font-sans italic text-amber-300';
    el.textContent = text;
    return el;
  }

  function skippedText(n, why) {
    return '… ' + n + (n === 1 ? ' line' : ' lines') + ' skipped ' + why + ' …';
  }

  function atBottom() {
    return out.scrollHeight - out.scrollTop - out.clientHeight < 40;
  }

  function render(items) {
    var stick = atBottom();
    var frag = document.createDocumentFragment();
    for (var i = 0; i < items.length; i++) {
      var it = items[i];
      if (it.skip) {
        frag.appendChild(markerEl(skippedText(it.skip, '(this page fell behind)')));
      } else {
        frag.appendChild(lineEl(it));
        lines++;
      }
    }
    out.appendChild(frag);
    // Oldest lines go first once the screen holds its fill.
    while (lines > MAX_LINES) {
      var first = out.querySelector('[data-line]');
      if (!first) break;
      // Markers before the oldest line speak of lines already gone.
      var prev = first.previousElementSibling;
      while (prev && prev.hasAttribute('data-marker')) {
        var before = prev.previousElementSibling;
        prev.remove();
        prev = before;
      }
      first.remove();
      lines--;
    }
    showEmpty('No output yet');
    updateCount();
    if (stick) out.scrollTop = out.scrollHeight;
  }

  function receive(items) {
    for (var i = 0; i < items.length; i++) {
      if (items[i].t && items[i].t > lastTime) lastTime = items[i].t;
    }
    if (!paused) {
      render(items);
      return;
    }
    for (var j = 0; j < items.length; j++) held.push(items[j]);
    if (held.length > MAX_HELD) {
      var drop = held.length - MAX_HELD;
      held.splice(0, drop);
      heldDropped += drop;
    }
    status('Paused · ' + held.length + ' new ' + (held.length === 1 ? 'line' : 'lines') + ' waiting', 'paused');
  }

  function setPaused(p) {
    paused = p;
    pauseBtn.textContent = p ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-pressed', p ? 'true' : 'false');
    if (p) {
      status('Paused', 'paused');
      return;
    }
    if (heldDropped > 0) {
      out.appendChild(markerEl(skippedText(heldDropped, 'while paused')));
      heldDropped = 0;
    }
    var h = held;
    held = [];
    render(h);
    status(ended ? statusEl.dataset.endedText || 'Ended' : 'Live', ended ? 'ended' : 'live');
  }

  function clearLines() {
    out.querySelectorAll('[data-line],[data-marker]').forEach(function (el) {
      el.remove();
    });
    lines = 0;
    held = [];
    heldDropped = 0;
    showEmpty('No output yet');
    updateCount();
  }

  // ---------------------------------------------------------------------
  // The stream

  function streamURL(resume) {
    var q = new URLSearchParams();
    var tail = parseInt(tailIn.value, 10);
    q.set('tail', isNaN(tail) ? '200' : String(tail));
    if (resume && lastTime) {
      // Everything after the newest line this page has, however much.
      q.set('tail', tailIn.max);
      q.set('since', lastTime);
    }
    q.set('follow', followIn.checked ? '1' : '0');
    q.set('timestamps', '1');
    if (serverFilter) q.set('q', serverFilter);
    return root.dataset.stream + '?' + q.toString();
  }

  function parse(e) {
    try {
      return JSON.parse(e.data);
    } catch (err) {
      return null;
    }
  }

  function connect(resume) {
    if (es) es.close();
    clearTimeout(retryTimer);
    ended = false;
    if (!paused) status(resume ? 'Reconnecting…' : 'Connecting…', 'connecting');
    es = new EventSource(streamURL(resume));
    es.addEventListener('log-open', function (e) {
      var d = parse(e) || {};
      retry = 0;
      ended = false;
      if (!paused) {
        if (d.running) status(d.follow ? 'Live' : 'Showing the requested output', 'live');
        else status('The container is not running; this is its last output', 'ended');
      }
      showEmpty('No output yet');
    });
    es.addEventListener('log-lines', function (e) {
      var d = parse(e);
      if (d && d.lines) receive(d.lines);
    });
    es.addEventListener('log-end', function (e) {
      var d = parse(e) || {};
      ended = true;
      statusEl.dataset.endedText = d.message || 'The output ended.';
      if (!paused) status(statusEl.dataset.endedText, 'ended');
      showEmpty('No output yet');
    });
    es.addEventListener('log-error', function (e) {
      var d = parse(e) || {};
      ended = true;
      statusEl.dataset.endedText = d.message || 'The output is not available.';
      status(statusEl.dataset.endedText, 'error');
      showEmpty('No output: ' + statusEl.dataset.endedText);
    });
    es.addEventListener('events', function (e) {
      if (feed) feed.innerHTML = e.data;
    });
    es.addEventListener('event', function (e) {
      if (!feed) return;
      var tpl = document.createElement('template');
      tpl.innerHTML = e.data;
      var item = tpl.content.firstElementChild;
      if (!item) return;
      var id = item.getAttribute('data-event-id');
      if (id && feed.querySelector('[data-event-id="' + id + '"]')) return;
      var none = feed.querySelector('[data-events-empty]');
      if (none) none.remove();
      feed.insertBefore(item, feed.firstChild);
      while (feed.children.length > MAX_EVENTS) feed.removeChild(feed.lastElementChild);
    });
    // The browser would reconnect by itself and be sent the whole tail
    // again; instead resume after the last line this page has.
    es.onerror = function () {
      es.close();
      es = null;
      retry = Math.min(retry + 1, 6);
      status('Disconnected; reconnecting…', 'error');
      retryTimer = setTimeout(function () {
        connect(true);
      }, Math.min(500 * Math.pow(2, retry), 15000));
    };
  }

  function restart() {
    serverFilter = filterIn.value;
    lastTime = '';
    clearLines();
    showEmpty('Loading output…');
    syncURL();
    connect(false);
  }

  // The address shows the options, so a reload or a shared link keeps them.
  function syncURL() {
    var q = new URLSearchParams();
    q.set('tail', tailIn.value);
    q.set('follow', followIn.checked ? '1' : '0');
    q.set('timestamps', tsIn.checked ? '1' : '0');
    if (filterIn.value) q.set('q', filterIn.value);
    try {
      history.replaceState(null, '', location.pathname + '?' + q.toString());
    } catch (err) {}
  }

  // ---------------------------------------------------------------------
  // Controls

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    var n = parseInt(tailIn.value, 10);
    if (isNaN(n) || n < 0 || n > parseInt(tailIn.max, 10)) {
      tailIn.setCustomValidity('Choose 0 to ' + tailIn.max + ' lines.');
      tailIn.reportValidity();
      return;
    }
    tailIn.setCustomValidity('');
    restart();
  });
  tailIn.addEventListener('input', function () {
    tailIn.setCustomValidity('');
  });
  followIn.addEventListener('change', restart);
  tsIn.addEventListener('change', function () {
    out.dataset.ts = tsIn.checked ? 'on' : 'off';
    syncURL();
  });
  filterIn.addEventListener('input', function () {
    out.querySelectorAll('[data-line]').forEach(function (el) {
      var t = el.querySelector('[data-text]');
      el.hidden = !matches(t ? t.textContent : '');
    });
    updateCount();
  });
  pauseBtn.addEventListener('click', function () {
    setPaused(!paused);
  });
  clearBtn.addEventListener('click', clearLines);

  window.addEventListener('pagehide', function () {
    if (es) es.close();
    clearTimeout(retryTimer);
  });

  out.dataset.ts = tsIn.checked ? 'on' : 'off';
  connect(false);
})();

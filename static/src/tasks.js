// A task's page: events stream in over server-sent events as HTML the
// server rendered (and escaped); each carries its sequence number as the
// event id, so a reconnect resumes right after the last one shown and
// nothing repeats. The summary and, at the end, the outcome (changed
// files, follow-up form) are replaced as the task moves on.
(function () {
  'use strict';

  var root = document.querySelector('[data-task-stream]');
  if (!root) return;
  var list = root.querySelector('[data-events]');
  var statusEl = document.querySelector('[data-task-status]');
  var outcomeEl = document.querySelector('[data-task-outcome]');
  var liveNote = root.querySelector('[data-live-note]');
  var last = parseInt(root.getAttribute('data-after') || '0', 10);
  var es = null;
  var retry = 0;
  var ended = root.hasAttribute('data-final');

  // Follow the newest event only while the reader is at the bottom.
  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.offsetHeight - 120;
  }

  function swap(el, html) {
    if (!el) return;
    el.innerHTML = html;
    if (window.htmx) window.htmx.process(el);
  }

  function connect() {
    if (ended) return;
    es = new EventSource(root.getAttribute('data-task-stream') + '?after=' + last);
    es.addEventListener('open', function () {
      retry = 0;
    });
    es.addEventListener('ev', function (e) {
      var seq = parseInt(e.lastEventId, 10);
      if (!(seq > last)) return;
      last = seq;
      var follow = nearBottom();
      list.insertAdjacentHTML('beforeend', e.data);
      if (follow) window.scrollTo(0, document.body.scrollHeight);
    });
    es.addEventListener('status', function (e) {
      swap(statusEl, e.data);
    });
    es.addEventListener('outcome', function (e) {
      swap(outcomeEl, e.data);
    });
    es.addEventListener('end', function () {
      ended = true;
      es.close();
      if (liveNote) liveNote.remove();
    });
    es.onerror = function () {
      // Reconnect ourselves, from the last event shown.
      es.close();
      if (ended) return;
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, 1000 * retry);
    };
  }

  connect();
})();

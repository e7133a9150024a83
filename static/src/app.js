// AICode Manager's own browser code: htmx settings, toasts, dialogs and the
// theme toggle. Everything else is server-rendered HTML.
(function () {
  'use strict';

  // Swap 2xx/3xx and validation answers (422, the form with its errors);
  // other errors are shown as a toast from the HX-Trigger header.
  htmx.config.responseHandling = [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    { code: '422', swap: true, error: false },
    { code: '[45]..', swap: false, error: true },
  ];

  function toast(level, message) {
    if (!message) return;
    var box = document.getElementById('toasts');
    if (!box) return;
    var el = document.createElement('div');
    el.className = 'toast toast-' + (level === 'error' || level === 'success' ? level : 'info');
    el.setAttribute('role', level === 'error' ? 'alert' : 'status');
    el.dataset.testid = 'toast';
    var text = document.createElement('span');
    text.className = 'grow';
    text.textContent = message;
    var close = document.createElement('button');
    close.type = 'button';
    close.className = 'opacity-60 hover:opacity-100';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '×';
    close.addEventListener('click', function () {
      el.remove();
    });
    el.appendChild(text);
    el.appendChild(close);
    box.appendChild(el);
    setTimeout(function () {
      el.remove();
    }, level === 'error' ? 10000 : 5000);
  }
  window.aicodeToast = toast;

  document.body.addEventListener('toast', function (e) {
    toast(e.detail.level, e.detail.message);
  });

  // A request that never reached the server (network down, server gone).
  document.body.addEventListener('htmx:sendError', function () {
    toast('error', 'The server could not be reached. Check your connection and try again.');
  });
  document.body.addEventListener('htmx:responseError', function (e) {
    var xhr = e.detail.xhr;
    if (!xhr.getResponseHeader('HX-Trigger')) {
      toast('error', 'The request failed (' + xhr.status + '). Try again.');
    }
  });

  // Buttons that want a second thought.
  document.body.addEventListener('htmx:confirm', function (e) {
    var q = e.detail.elt.getAttribute('data-confirm');
    if (!q) return;
    e.preventDefault();
    if (window.confirm(q)) e.detail.issueRequest(true);
  });
  document.addEventListener('submit', function (e) {
    var btn = e.submitter;
    if (btn && btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) e.preventDefault();
  });

  // Dialogs delivered by htmx open themselves; Cancel and Escape close them.
  function openDialogs(root) {
    root.querySelectorAll('dialog[data-autoshow]').forEach(function (d) {
      if (!d.open) d.showModal();
    });
  }
  document.body.addEventListener('htmx:afterSwap', function () {
    openDialogs(document);
  });
  document.addEventListener('click', function (e) {
    var closer = e.target.closest('[data-dialog-close]');
    if (!closer) return;
    var d = closer.closest('dialog');
    if (d) {
      e.preventDefault();
      d.close();
      d.remove();
    }
  });
  document.addEventListener('close', function (e) {
    if (e.target.tagName === 'DIALOG' && e.target.hasAttribute('data-autoshow')) e.target.remove();
  }, true);

  document.addEventListener('click', function (e) {
    if (!e.target.closest('[data-theme-toggle]')) return;
    var dark = !document.documentElement.classList.contains('dark');
    document.documentElement.classList.toggle('dark', dark);
    try {
      localStorage.setItem('theme', dark ? 'dark' : 'light');
    } catch (err) {}
  });

  // Live streams end with the page. A page kept in the back/forward cache
  // would otherwise hold its stream open, and browsers allow only six
  // connections per site over HTTP/1.1: a few cached pages starve every
  // later request. A page restored from that cache reloads, so its live
  // parts are current.
  window.addEventListener('pagehide', function () {
    document.querySelectorAll('[sse-connect]').forEach(function (el) {
      htmx.trigger(el, 'htmx:beforeCleanupElement');
    });
  });
  window.addEventListener('pageshow', function (e) {
    if (e.persisted) window.location.reload();
  });

  // A one-time message left by the previous request (after a redirect).
  var flash = document.getElementById('toasts');
  if (flash && flash.dataset.flash) toast('success', flash.dataset.flash);
})();

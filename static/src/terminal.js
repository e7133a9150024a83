// Web terminals: xterm.js attached to a server-side terminal session over a
// WebSocket. Output arrives as binary frames; the page acknowledges bytes
// as xterm.js has rendered them, which paces the server (flow control).
// Sessions live on the server, so a dropped connection reattaches and the
// server replays the screen.
(function () {
  'use strict';

  // xterm.js injects <style> elements; the page's Content-Security-Policy
  // admits only those carrying this page's nonce.
  var nonce = (document.querySelector('meta[name="csp-nonce"]') || {}).content;
  if (nonce) {
    var create = Document.prototype.createElement;
    Document.prototype.createElement = function (tag, opts) {
      var el = create.call(this, tag, opts);
      if (String(tag).toLowerCase() === 'style') el.nonce = nonce;
      return el;
    };
  }

  var ACK_EVERY = 32 * 1024;
  var enc = new TextEncoder();

  function attach(root) {
    var screen = root.querySelector('[data-terminal-screen]');
    var statusEl = root.querySelector('[data-terminal-status]');
    var canWrite = root.hasAttribute('data-can-write');
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + root.dataset.ws;

    var term = new window.Terminal({
      cursorBlink: canWrite,
      disableStdin: !canWrite,
      convertEol: false,
      scrollback: 5000,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace',
      fontSize: 13,
      theme: { background: '#0b1020' },
    });
    var fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.loadAddon(new window.WebLinksAddon.WebLinksAddon());
    term.open(screen);
    window.aicodeTerminal = term; // for tests and the curious
    safeFit();

    var ws = null;
    var ended = false;
    var retry = 0;
    var unacked = 0;

    function status(text, state) {
      statusEl.textContent = text;
      statusEl.dataset.state = state || '';
    }

    function safeFit() {
      try {
        fit.fit();
      } catch (e) {}
    }

    function sendJSON(obj) {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
    }

    function ack(n) {
      unacked += n;
      if (unacked >= ACK_EVERY) flushAck();
    }
    function flushAck() {
      if (unacked > 0) {
        sendJSON({ type: 'ack', bytes: unacked });
        unacked = 0;
      }
    }
    // Small amounts are acknowledged shortly after rendering too, so a
    // quiet session never leaves the server waiting.
    setInterval(flushAck, 250);

    function connect() {
      status(retry ? 'Reconnecting…' : 'Connecting…', 'connecting');
      ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      ws.onopen = function () {
        retry = 0;
      };
      ws.onmessage = function (ev) {
        if (typeof ev.data === 'string') {
          var msg;
          try {
            msg = JSON.parse(ev.data);
          } catch (e) {
            return;
          }
          if (msg.type === 'hello') {
            status(msg.canWrite ? 'Connected' : 'Connected · watching (read-only)', 'live');
            sendResize();
          } else if (msg.type === 'resync') {
            term.reset();
          } else if (msg.type === 'exit') {
            ended = true;
            term.write('\r\n\x1b[2m[' + msg.reason + ']\x1b[0m\r\n');
            status('Ended: ' + msg.reason, 'ended');
          } else if (msg.type === 'error') {
            if (msg.fatal) {
              ended = true;
              status(msg.message, 'error');
            } else if (window.aicodeToast) {
              window.aicodeToast('error', msg.message);
            }
          }
          return;
        }
        var data = new Uint8Array(ev.data);
        term.write(data, function () {
          ack(data.length);
        });
      };
      ws.onclose = function () {
        flushAck();
        ws = null;
        if (ended) return;
        retry = Math.min(retry + 1, 6);
        var delay = [0, 500, 1000, 2000, 4000, 8000, 15000][retry];
        status('Disconnected; reconnecting in ' + Math.round(delay / 1000) + ' s…', 'connecting');
        setTimeout(connect, delay);
      };
    }

    var lastSize = '';
    function sendResize() {
      if (!canWrite) return;
      var size = term.cols + 'x' + term.rows;
      if (size === lastSize && ws && ws.readyState === WebSocket.OPEN) return;
      lastSize = size;
      sendJSON({ type: 'resize', cols: term.cols, rows: term.rows });
    }

    term.onData(function (d) {
      if (canWrite && ws && ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    });
    term.onBinary(function (d) {
      if (!canWrite || !ws || ws.readyState !== WebSocket.OPEN) return;
      var b = new Uint8Array(d.length);
      for (var i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 0xff;
      ws.send(b);
    });
    term.onResize(function () {
      lastSize = '';
      sendResize();
    });
    var pending = 0;
    new ResizeObserver(function () {
      clearTimeout(pending);
      pending = setTimeout(safeFit, 50);
    }).observe(screen);

    // Copy and paste: Ctrl+Shift+C / Ctrl+Shift+V, and the toolbar buttons
    // (Ctrl+C stays the shell's interrupt).
    function copy() {
      var text = term.getSelection();
      if (text && navigator.clipboard) navigator.clipboard.writeText(text);
    }
    function paste() {
      if (canWrite && navigator.clipboard && navigator.clipboard.readText) {
        navigator.clipboard.readText().then(function (t) {
          term.paste(t);
        });
      }
    }
    term.attachCustomKeyEventHandler(function (e) {
      if (e.type === 'keydown' && e.ctrlKey && e.shiftKey && (e.key === 'C' || e.key === 'c')) {
        copy();
        return false;
      }
      if (e.type === 'keydown' && e.ctrlKey && e.shiftKey && (e.key === 'V' || e.key === 'v')) {
        paste();
        return false;
      }
      return true;
    });
    var copyBtn = root.querySelector('[data-terminal-copy]');
    if (copyBtn) copyBtn.addEventListener('click', copy);
    var pasteBtn = root.querySelector('[data-terminal-paste]');
    if (pasteBtn) pasteBtn.addEventListener('click', paste);

    window.addEventListener('pagehide', function () {
      ended = true;
      if (ws) ws.close();
    });
    connect();
    term.focus();
  }

  // A new terminal opens at the size the screen would have.
  document.querySelectorAll('form[data-terminal-open]').forEach(function (f) {
    f.addEventListener('submit', function () {
      var t = window.aicodeTerminal;
      if (t) {
        f.elements.cols.value = t.cols;
        f.elements.rows.value = t.rows;
      }
    });
  });

  document.querySelectorAll('[data-terminal]').forEach(attach);
})();

// interplab dashboard: writes to the log, live run states, heatmap hover. No framework, no
// network beyond this server; every request carries the per-start token in a header.
(function () {
  'use strict';
  var token = document.querySelector('meta[name="interplab-token"]').content;

  function flash(text, isError) {
    var el = document.getElementById('flash');
    el.textContent = text;
    el.className = 'flash' + (isError ? ' error' : '');
    el.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { el.hidden = true; }, isError ? 8000 : 3000);
  }

  function request(method, path, body) {
    var opts = { method: method, headers: { 'X-Interplab-Token': token }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) { throw new Error(data.error || ('HTTP ' + r.status)); }
        return data;
      });
    });
  }
  window.interplab = { request: request, flash: flash };

  function formData(form) {
    var out = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) { return; }
      out[el.name] = el.type === 'checkbox' ? el.checked : el.value;
    });
    return out;
  }

  function afterWrite(message) {
    return function () { flash(message); setTimeout(function () { location.reload(); }, 400); };
  }
  function failed(e) { flash(e.message, true); }

  // -- forms (delegated, so a run body swapped in live keeps working) ------------------------
  document.addEventListener('submit', function (ev) {
    var form = ev.target, d = formData(form);
    var handlers = {
      'note-form': function () {
        return request('POST', '/api/notes', { text: d.text, kind: d.limitation ? 'limitation' : 'note' })
          .then(afterWrite('note added'));
      },
      'hypothesis-form': function () {
        return request('POST', '/api/hypotheses', { text: d.text }).then(afterWrite('hypothesis written'));
      },
      'finding-form': function () {
        return request('POST', '/api/findings', {
          claim: d.claim, evidence: d.evidence, confidence: d.confidence,
          change_my_mind: d.change_my_mind, family: d.family
        }).then(afterWrite('finding recorded'));
      },
      'run-note': function () {
        return request('POST', '/api/notes', { text: d.text, run: form.dataset.run }).then(afterWrite('note added'));
      },
      'link-run': function () {
        return request('POST', '/api/hypotheses/' + d.hypothesis + '/links', { run: form.dataset.run })
          .then(afterWrite('linked'));
      }
    };
    var handler = handlers[form.id];
    if (!handler && form.classList.contains('status-form')) {
      handler = function () {
        return request('POST', '/api/hypotheses/' + form.dataset.hypothesis + '/status',
          { status: d.status, note: d.note }).then(afterWrite('status set'));
      };
    }
    if (!handler) { return; }
    ev.preventDefault();
    handler().catch(failed);
  });

  // -- stars ------------------------------------------------------------------------------
  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest ? ev.target.closest('button.star') : null;
    if (!btn || btn.classList.contains('on')) { return; }
    var artifact = btn.dataset.artifact || '';
    request('POST', '/api/highlights', {
      run: btn.dataset.run, artifact: artifact,
      comment: artifact ? 'starred figure (' + artifact + ')' : 'starred run'
    }).then(function () {
      btn.classList.add('on');
      btn.textContent = artifact ? '★ starred' : '★ star run';
      flash('starred');
    }).catch(failed);
  });

  // -- compare two runs -------------------------------------------------------------------
  var compare = document.getElementById('compare');
  if (compare) {
    var picked = function () {
      return Array.prototype.map.call(document.querySelectorAll('input.pick:checked'), function (c) { return c.value; });
    };
    document.addEventListener('change', function (ev) {
      if (ev.target.classList && ev.target.classList.contains('pick')) { compare.disabled = picked().length !== 2; }
    });
    compare.addEventListener('click', function () {
      var ids = picked().map(Number).sort(function (x, y) { return x - y; });  // older run first
      if (ids.length === 2) { location.href = '/runs/compare?a=' + ids[0] + '&b=' + ids[1]; }
    });
  }

  // -- heatmap hover: each cell carries its mean, CI and adjusted p ----------------------------
  function showCell(ev) {
    var cell = ev.target;
    if (!cell.classList || !cell.classList.contains('cell')) { return; }
    var box = cell.closest('.heatmaps');
    var info = box && box.querySelector('.hm-info');
    if (info) { info.textContent = cell.getAttribute('data-info'); }
  }
  document.addEventListener('mouseover', showCell);
  document.addEventListener('click', showCell);

  // -- live runs --------------------------------------------------------------------------
  function fmtDuration(s) {
    if (s < 60) { return s.toFixed(1) + ' s'; }
    if (s < 3600) { return (s / 60).toFixed(1) + ' min'; }
    return (s / 3600).toFixed(1) + ' h';
  }
  function statusHtml(s) { return '<span class="status status-' + s + '">' + s + '</span>'; }

  function progressText(s) {
    if (!s.progress) { return ''; }
    var p = s.progress;
    return ', ' + p[0] + ' ' + p[1] + '/' + p[2] + (p[2] ? ' (' + Math.floor(100 * p[1] / p[2]) + '%)' : '');
  }

  function pollRows() {
    var rows = document.querySelectorAll('tr.run-row[data-live="1"]');
    if (!rows.length) { return; }
    var ids = Array.prototype.map.call(rows, function (r) { return r.dataset.run; });
    request('GET', '/api/runs/state?ids=' + ids.join(',')).then(function (data) {
      data.runs.forEach(function (s) {
        var row = document.querySelector('tr.run-row[data-run="' + s.id + '"]');
        if (!row) { return; }
        row.querySelector('.status-cell').innerHTML = statusHtml(s.status);
        row.querySelector('.elapsed').textContent = s.status === 'running'
          ? 'running ' + fmtDuration(s.elapsed) + progressText(s) + ', heartbeat ' + fmtDuration(s.heartbeat_age) + ' ago'
          : fmtDuration(s.elapsed);
        if (s.status !== 'running') { row.removeAttribute('data-live'); }
      });
    }).catch(function () {});
  }

  var table = document.getElementById('runs-table');
  function pollNew() {
    if (!table || !table.dataset.latest) { return; }
    request('GET', '/api/runs/latest').then(function (data) {
      var fresh = data.latest - Number(table.dataset.latest);
      var el = document.getElementById('new-runs');
      if (fresh > 0) { el.hidden = false; el.innerHTML = fresh + ' new run(s) since this page loaded: <a href="">show them</a>'; }
    }).catch(function () {});
  }

  function pollRun() {
    var body = document.getElementById('run-body');
    if (!body || body.dataset.status !== 'running') { return; }
    request('GET', '/api/runs/state?ids=' + body.dataset.run).then(function (data) {
      var s = data.runs[0];
      if (!s) { return; }
      if (s.status === 'running') {
        document.getElementById('run-elapsed').textContent = 'running for ' + fmtDuration(s.elapsed) + progressText(s);
        var hb = document.getElementById('run-heartbeat');
        if (hb) { hb.textContent = 'heartbeat ' + fmtDuration(s.heartbeat_age) + ' ago'; }
        return;
      }
      body.dataset.status = s.status;
      return fetch('/api/runs/' + s.id + '/fragment', { headers: { 'X-Interplab-Token': token }, credentials: 'same-origin' })
        .then(function (r) { return r.text(); })
        .then(function (html) { body.innerHTML = html; flash('run ' + s.id + ' is ' + s.status); });
    }).catch(function () {});
  }

  function pollOverview() {
    var links = document.querySelectorAll('a.live-run');
    if (!links.length) { return; }
    var ids = Array.prototype.map.call(links, function (a) { return a.dataset.run; });
    request('GET', '/api/runs/state?ids=' + ids.join(',')).then(function (data) {
      data.runs.forEach(function (s) {
        var a = document.querySelector('a.live-run[data-run="' + s.id + '"]');
        if (a && s.status !== 'running') { a.textContent = 'run ' + s.id + ': ' + s.status; a.classList.remove('live-run'); }
        else if (a) { a.textContent = 'run ' + s.id + ' (' + fmtDuration(s.elapsed) + ')'; }
      });
    }).catch(function () {});
  }

  var POLL_MS = 1500;
  setInterval(function () { pollRows(); pollRun(); pollOverview(); }, POLL_MS);
  setInterval(pollNew, 5000);
  pollRows(); pollRun(); pollOverview();
})();

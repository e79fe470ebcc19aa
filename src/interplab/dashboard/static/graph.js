// The attribution-graph viewer: nodes by layer (rows) and token position (columns), drawn as
// SVG; clicking a node lists its label and its strongest incoming and outgoing edges and draws
// them. The data comes from /api/graph, already checked by the server.
(function () {
  'use strict';
  var holder = document.getElementById('graph');
  if (!holder) { return; }
  var NS = 'http://www.w3.org/2000/svg';
  var COL_W = 110, ROW_H = 46, LEFT = 60, TOP = 20, BOTTOM = 90, SHOWN = 25;
  var COLOURS = { 'embedding': '#6a9f58', 'logit': '#d1615d', 'mlp reconstruction error': '#999999' };
  var api = window.interplab;

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function colour(type) { return COLOURS[type] || (type.indexOf('error') >= 0 ? '#999999' : '#5778a4'); }

  function draw(g) {
    document.getElementById('graph-prompt').textContent = g.prompt ? 'prompt: ' + g.prompt : '';
    var nRows = g.rows.length, nCols = g.tokens.length;
    // Several nodes can share a (row, column) cell: spread them across the cell.
    var cells = {};
    g.nodes.forEach(function (n, i) { var k = n.row + ':' + n.col; (cells[k] = cells[k] || []).push(i); });
    var pos = new Array(g.nodes.length);
    Object.keys(cells).forEach(function (k) {
      var members = cells[k];
      members.sort(function (a, b) { return Math.abs(g.nodes[b].influence || 0) - Math.abs(g.nodes[a].influence || 0); });
      members.forEach(function (i, j) {
        var n = g.nodes[i], spread = Math.min(COL_W - 20, 12 * members.length);
        var x = LEFT + n.col * COL_W + COL_W / 2 + (members.length > 1 ? (j / (members.length - 1) - 0.5) * spread : 0);
        var y = TOP + (nRows - 1 - n.row) * ROW_H + ROW_H / 2;
        pos[i] = [x, y];
      });
    });
    var width = LEFT + nCols * COL_W + 20, height = TOP + nRows * ROW_H + BOTTOM;
    var svg = el('svg', { width: width, height: height, id: 'graph-svg', 'font-family': 'sans-serif', 'font-size': '10' });
    g.rows.forEach(function (layer, r) {
      var y = TOP + (nRows - 1 - r) * ROW_H + ROW_H / 2 + 3;
      svg.appendChild(el('text', { x: LEFT - 8, y: y, 'text-anchor': 'end', fill: '#555' }, layer === 'E' ? 'emb' : 'L' + layer));
      svg.appendChild(el('line', { x1: LEFT, x2: width - 20, y1: y - 3, y2: y - 3, stroke: '#f0f0f0' }));
    });
    g.tokens.forEach(function (tok, c) {
      var x = LEFT + c * COL_W + COL_W / 2, y = TOP + nRows * ROW_H + 12;
      svg.appendChild(el('text', { x: x, y: y, transform: 'rotate(35 ' + x + ' ' + y + ')', fill: '#333' }, tok.slice(0, 16)));
    });
    var edges = el('g', { id: 'graph-edges' });
    svg.appendChild(edges);
    var maxAbs = 0;
    g.links.forEach(function (l) { maxAbs = Math.max(maxAbs, Math.abs(l[2])); });
    var incoming = g.nodes.map(function () { return []; }), outgoing = g.nodes.map(function () { return []; });
    g.links.forEach(function (l) { outgoing[l[0]].push(l); incoming[l[1]].push(l); });
    var circles = [];
    g.nodes.forEach(function (n, i) {
      var r = 4 + 5 * Math.min(1, Math.abs(n.influence || 0));
      var c = el('circle', {
        cx: pos[i][0], cy: pos[i][1], r: r, fill: colour(n.type), class: 'gnode' + (n.target ? ' target' : ''),
        'data-node': n.id, tabindex: 0
      });
      c.appendChild(el('title', {}, n.id + (n.label ? ': ' + n.label : '')));
      c.addEventListener('click', function () { select(i); });
      svg.appendChild(c);
      circles.push(c);
    });
    holder.innerHTML = '';
    holder.appendChild(svg);

    function edgeRow(l, other, dir) {
      var n = g.nodes[other];
      var li = document.createElement('li');
      var a = document.createElement('a');
      a.href = '#'; a.textContent = n.id; a.className = 'edge-node';
      a.addEventListener('click', function (e) { e.preventDefault(); select(other); });
      li.appendChild(document.createTextNode((l[2] >= 0 ? '+' : '') + l[2].toPrecision(3) + ' ' + dir + ' '));
      li.appendChild(a);
      if (n.label) { li.appendChild(document.createTextNode(' ' + n.label)); }
      return li;
    }

    function select(i) {
      var n = g.nodes[i];
      circles.forEach(function (c) { c.classList.remove('selected'); });
      circles[i].classList.add('selected');
      while (edges.firstChild) { edges.removeChild(edges.firstChild); }
      var byWeight = function (a, b) { return Math.abs(b[2]) - Math.abs(a[2]); };
      var ins = incoming[i].slice().sort(byWeight), outs = outgoing[i].slice().sort(byWeight);
      ins.slice(0, SHOWN).concat(outs.slice(0, SHOWN)).forEach(function (l) {
        var s = pos[l[0]], t = pos[l[1]];
        edges.appendChild(el('line', {
          x1: s[0], y1: s[1], x2: t[0], y2: t[1], class: 'gedge',
          stroke: l[2] >= 0 ? '#2166ac' : '#b2182b', 'stroke-opacity': 0.75,
          'stroke-width': 0.5 + 4 * Math.abs(l[2]) / (maxAbs || 1)
        }));
      });
      var panel = document.getElementById('node-panel');
      panel.innerHTML = '';
      var h = document.createElement('h3'); h.id = 'node-title'; h.textContent = n.id; panel.appendChild(h);
      var p = document.createElement('p'); p.id = 'node-label'; p.textContent = n.label || '(no label)'; panel.appendChild(p);
      var facts = document.createElement('table');
      [['type', n.type], ['layer', n.layer], ['position', n.col + ' (' + g.tokens[n.col] + ')'], ['feature', n.feature],
       ['activation', n.activation], ['influence', n.influence], ['token probability', n.token_prob]].forEach(function (kv) {
        if (kv[1] === null || kv[1] === undefined) { return; }
        var tr = document.createElement('tr');
        var th = document.createElement('th'); th.textContent = kv[0];
        var td = document.createElement('td'); td.textContent = typeof kv[1] === 'number' && kv[0] !== 'feature' ? Number(kv[1]).toPrecision(4) : kv[1];
        tr.appendChild(th); tr.appendChild(td); facts.appendChild(tr);
      });
      panel.appendChild(facts);
      [['incoming', ins, 0, 'from'], ['outgoing', outs, 1, 'to']].forEach(function (spec) {
        var title = document.createElement('h4');
        title.textContent = spec[1].length + ' ' + spec[0] + ' edges' + (spec[1].length > SHOWN ? ' (strongest ' + SHOWN + ')' : '');
        panel.appendChild(title);
        var ul = document.createElement('ul'); ul.className = 'edges edges-' + spec[0];
        spec[1].slice(0, SHOWN).forEach(function (l) { ul.appendChild(edgeRow(l, l[spec[2]], spec[3])); });
        panel.appendChild(ul);
      });
    }
  }

  api.request('GET', '/api/graph?src=' + encodeURIComponent(holder.dataset.src))
    .then(draw)
    .catch(function (e) {
      holder.innerHTML = '';
      var p = document.createElement('p'); p.className = 'error-message'; p.textContent = e.message;
      holder.appendChild(p);
    });
})();

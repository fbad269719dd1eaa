// The SuperEats demo page: two Fjord streams (every order, every driver) read with
// fjord.js, and a "drop connection" button that proves a resume loses nothing.
//
// The whole state is in `window.demo`, so what the page shows can be checked from
// outside (the browser tests read it): per order, the states received in order.
(function () {
  'use strict';

  var STATES = ['placed', 'cooking', 'picked_up', 'five_minutes_away', 'delivered'];
  var LABELS = ['placed', 'cooking', 'picked up', '5 min away', 'delivered'];
  var SHOWN_ORDERS = 12;
  var params = new URLSearchParams(location.search);
  var settings = window.FJORD_DEMO || {};
  var token = params.get('token') || settings.token || '';
  var offlineMs = Number(params.get('offline') || 3000);

  var demo = {
    orders: {},          // id -> {id, restaurant, dish, driver, steps: [step...], replayed: {step: true}}
    orderList: [],       // ids, newest first
    drivers: {},         // id -> latest event, plus `updates`
    orderEvents: 0,
    driverEvents: 0,
    resumes: 0,
    caughtUp: 0,         // events that happened while the page was disconnected
    gaps: 0,             // order steps that never arrived
    duplicates: 0,       // events delivered twice
    seqBreaks: 0,        // holes in the run-wide order sequence
    lastSeq: null,
    droppedAt: null,     // while disconnected: when the drop happened
    resumedAt: null,
    streams: {},
  };
  window.demo = demo;

  var $ = function (id) { return document.getElementById(id); };

  function onOrder(event) {
    demo.orderEvents += 1;
    if (demo.lastSeq !== null) {
      if (event.seq <= demo.lastSeq) {
        demo.duplicates += 1;
        return;
      }
      if (event.seq !== demo.lastSeq + 1) {
        demo.seqBreaks += 1;
      }
    }
    demo.lastSeq = event.seq;
    var order = demo.orders[event.order];
    if (!order) {
      order = demo.orders[event.order] = { id: event.order, steps: [], replayed: {}, missed: {} };
      demo.orderList.unshift(event.order);
    }
    var last = order.steps.length ? order.steps[order.steps.length - 1] : null;
    if (last !== null && event.step <= last) {
      demo.duplicates += 1;
      return;
    }
    if (last !== null && event.step !== last + 1) {
      for (var s = last + 1; s < event.step; s++) {
        order.missed[s] = true;
        demo.gaps += 1;
      }
    }
    order.steps.push(event.step);
    order.restaurant = event.restaurant;
    order.dish = event.dish;
    order.driver = event.driver;
    if (demo.resumedAt && event.at < demo.resumedAt) {
      order.replayed[event.step] = true;
      demo.caughtUp += 1;
    }
    renderOrders();
    renderStats();
  }

  function onDriver(event) {
    demo.driverEvents += 1;
    var previous = demo.drivers[event.driver];
    event.updates = (previous ? previous.updates : 0) + 1;
    demo.drivers[event.driver] = event;
    if (demo.resumedAt && event.at < demo.resumedAt) {
      demo.caughtUp += 1;
    }
    renderDrivers();
    renderStats();
  }

  function setStatus(state, text) {
    var el = $('status');
    el.dataset.state = state;
    el.textContent = text;
  }

  function subscribe(name, path, eventName, handler) {
    demo.streams[name] = Fjord.subscribe(path, {
      token: token,
      events: [eventName],
      onmessage: function (data, meta) {
        if (meta.event === eventName && data && typeof data === 'object') {
          handler(data);
        }
      },
      ongap: function (gap) {
        console.warn('Kafka no longer holds', gap);
      },
      onstatus: function () {
        // Called first from inside Fjord.subscribe, before demo.streams has this one.
        var streams = Object.keys(demo.streams).map(function (k) { return demo.streams[k]; });
        if (demo.droppedAt || streams.length < 2) {
          return;
        }
        if (streams.every(function (s) { return s.state === 'open'; })) {
          setStatus('open', 'live · ' + streams[0].mode);
        } else {
          setStatus('connecting', 'connecting…');
        }
      },
    });
  }

  function drop() {
    var button = $('drop');
    button.disabled = true;
    demo.droppedAt = Date.now();
    Object.keys(demo.streams).forEach(function (k) { demo.streams[k].close(); });
    var left = Math.round(offlineMs / 1000);
    setStatus('dropped', 'disconnected — SuperEats goes on without us (' + left + ' s)');
    setTimeout(function () {
      demo.resumes += 1;
      demo.resumedAt = Date.now();
      demo.droppedAt = null;
      Object.keys(demo.streams).forEach(function (k) { demo.streams[k].reconnect(); });
      button.disabled = false;
      renderStats();
    }, offlineMs);
  }

  // ---- rendering -------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function renderOrders() {
    var body = document.querySelector('#orders tbody');
    body.textContent = '';
    demo.orderList.slice(0, SHOWN_ORDERS).forEach(function (id) {
      var order = demo.orders[id];
      var row = el('tr');
      row.dataset.order = id;
      row.dataset.states = order.steps.map(function (s) { return STATES[s]; }).join(' ');
      if (order.steps[order.steps.length - 1] === STATES.length - 1) {
        row.className = 'delivered';
      }
      row.appendChild(el('td', '', '#' + id));
      row.appendChild(el('td', '', order.restaurant + ' · ' + order.dish));
      row.appendChild(el('td', '', order.driver || '—'));
      var chips = el('div', 'chips');
      var first = order.steps[0];
      STATES.forEach(function (state, step) {
        var chip = el('span', 'chip', LABELS[step]);
        if (order.missed[step]) {
          chip.className += ' missed';
        } else if (order.replayed[step]) {
          chip.className += ' replayed';
        } else if (order.steps.indexOf(step) >= 0) {
          chip.className += ' seen';
        } else if (step < first) {
          chip.className += ' before';
          chip.title = 'before this page connected';
        }
        chips.appendChild(chip);
      });
      var cell = el('td');
      cell.appendChild(chips);
      row.appendChild(cell);
      body.appendChild(row);
    });
  }

  // Bergen centre ± 0.02°, projected onto the 400×300 map.
  function project(lat, lon) {
    return {
      x: 200 + (lon - 5.3221) / 0.02 * 200,
      y: 150 - (lat - 60.3913) / 0.01 * 150,
    };
  }

  function renderDrivers() {
    var map = $('map');
    var list = $('drivers');
    map.textContent = '';
    list.textContent = '';
    var ns = 'http://www.w3.org/2000/svg';
    Object.keys(demo.drivers).sort().forEach(function (id) {
      var d = demo.drivers[id];
      var p = project(d.lat, d.lon);
      var dot = document.createElementNS(ns, 'circle');
      dot.setAttribute('cx', p.x.toFixed(1));
      dot.setAttribute('cy', p.y.toFixed(1));
      dot.setAttribute('r', 6);
      if (d.order) { dot.setAttribute('class', 'busy'); }
      map.appendChild(dot);
      var label = document.createElementNS(ns, 'text');
      label.setAttribute('x', (p.x + 9).toFixed(1));
      label.setAttribute('y', (p.y + 4).toFixed(1));
      label.textContent = d.name;
      map.appendChild(label);
      var item = el('li', '', d.name + ' (' + id + ') ' + d.lat.toFixed(4) + ', ' + d.lon.toFixed(4) +
        (d.order ? ' · delivering #' + d.order : ' · free') + ' · ' + d.updates + ' updates');
      item.dataset.driver = id;
      item.dataset.updates = d.updates;
      list.appendChild(item);
    });
  }

  function renderStats() {
    var stats = $('stats');
    stats.dataset.orderEvents = demo.orderEvents;
    stats.dataset.driverEvents = demo.driverEvents;
    stats.dataset.resumes = demo.resumes;
    stats.dataset.caughtUp = demo.caughtUp;
    stats.dataset.gaps = demo.gaps;
    stats.dataset.duplicates = demo.duplicates;
    stats.dataset.seqBreaks = demo.seqBreaks;
    $('stat-orders').textContent = demo.orderEvents;
    $('stat-drivers').textContent = demo.driverEvents;
    $('stat-resumes').textContent = demo.resumes;
    $('stat-caught-up').textContent = demo.caughtUp;
    $('stat-gaps').textContent = demo.gaps;
  }

  if (!window.Fjord) {
    setStatus('error', 'fjord.js did not load');
    return;
  }
  if (!token) {
    setStatus('error', 'no token: open the URL fjord demo printed');
    return;
  }
  $('drop').addEventListener('click', drop);
  subscribe('orders', '/orders/all', 'order', onOrder);
  subscribe('drivers', '/drivers/all', 'driver', onDriver);
})();

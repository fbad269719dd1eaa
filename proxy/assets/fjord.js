/*! fjord.js — the browser client of Fjord's direct-mode streams (MIT).
 *
 * Served by a Fjord `files` route at the top of its path (e.g. /fjord.js).
 * One call subscribes to a stream:
 *
 *   const sub = Fjord.subscribe('/orders/2235407', {
 *     token: 'eyJ…',                  // or getToken: () => fetch('/token').then(r => r.text())
 *     events: ['order'],              // SSE event names to deliver (unnamed events always are)
 *     resumeKey: 'order-2235407',     // keep the resume id in localStorage across reloads
 *     onmessage(data, meta) { … },    // data: parsed JSON (or the text); meta: {id, event, raw}
 *   });
 *   sub.close();
 *
 * What it does for you:
 * - the token goes in the query (`?token=`), since EventSource cannot set headers;
 * - it remembers the last event id and reconnects with `?lastEventId=`, so the proxy
 *   replays exactly what was missed; with `resumeKey` the id survives a page reload;
 * - `event: close` from the proxy is handled: `token-expired` fetches a fresh token
 *   with `getToken()` and reconnects, `overflow` reconnects at once, both resuming;
 * - `event: gap` (records no longer in Kafka) is passed to `ongap`;
 * - where EventSource is missing it long-polls (`?mode=poll&since=<cursor>`) instead,
 *   delivering the same events through the same callbacks.
 */
(function (root, factory) {
  'use strict';
  var api = factory(root);
  if (typeof module === 'object' && module.exports) {
    module.exports = api;
  } else {
    root.Fjord = api;
  }
})(typeof self !== 'undefined' ? self : this, function (root) {
  'use strict';

  var STORAGE_PREFIX = 'fjord:';
  var MIN_RETRY_MS = 1000;
  var MAX_RETRY_MS = 15000;

  function noop() {}

  function parse(text) {
    if (typeof text !== 'string') {
      return text;
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      return text;
    }
  }

  function storage() {
    try {
      return root.localStorage || null;
    } catch (e) {
      return null; // storage disabled (privacy settings, sandboxed frames)
    }
  }

  function hasEventSource() {
    return typeof root.EventSource === 'function';
  }

  /**
   * Subscribes to `path` (relative to the page, or an absolute URL) with the options
   * described at the top of this file, plus:
   *   mode: 'auto' (default: SSE when EventSource exists, else long-poll) | 'sse' | 'poll'
   *   lastEventId: where to start when nothing is stored
   *   onopen(), onerror(info), ongap(gap), onclose(reason), onstatus(state)
   *   withCredentials: send cookies cross-origin (a `fjord_token` cookie, say)
   * Returns a Subscription: { close(), reconnect(), lastEventId, mode, state }.
   */
  function subscribe(path, options) {
    return new Subscription(path, options || {});
  }

  function Subscription(path, options) {
    this.path = path;
    this.options = options;
    this.token = options.token || null;
    this.events = (options.events || []).slice();
    this.resumeKey = options.resumeKey ? STORAGE_PREFIX + options.resumeKey : null;
    this.lastEventId = this._stored() || options.lastEventId || null;
    this.mode = options.mode && options.mode !== 'auto'
      ? options.mode
      : (hasEventSource() ? 'sse' : 'poll');
    this.state = 'idle';
    this._source = null;
    this._abort = null;
    this._timer = null;
    this._failures = 0;
    this._generation = 0; // bumps on every (re)connect; stale callbacks check it
    this._start();
  }

  Subscription.prototype._call = function (name) {
    var fn = this.options[name] || noop;
    var args = Array.prototype.slice.call(arguments, 1);
    try {
      fn.apply(this, args);
    } catch (e) {
      if (root.console) {
        root.console.error('fjord.js: ' + name + ' callback failed', e);
      }
    }
  };

  Subscription.prototype._setState = function (state) {
    if (this.state !== state) {
      this.state = state;
      this._call('onstatus', state);
    }
  };

  Subscription.prototype._stored = function () {
    var store = this.resumeKey && storage();
    return store ? store.getItem(this.resumeKey) : null;
  };

  Subscription.prototype._remember = function (id) {
    if (!id) {
      return;
    }
    this.lastEventId = id;
    var store = this.resumeKey && storage();
    if (store) {
      try {
        store.setItem(this.resumeKey, id);
      } catch (e) {
        /* quota: resuming across reloads is best effort */
      }
    }
  };

  /** The stream URL with token, resume id and mode parameters. */
  Subscription.prototype._url = function (extra) {
    var base = root.location ? root.location.href : undefined;
    var url = new URL(this.path, base);
    if (this.token) {
      url.searchParams.set('token', this.token);
    }
    for (var name in extra) {
      if (Object.prototype.hasOwnProperty.call(extra, name) && extra[name] != null) {
        url.searchParams.set(name, extra[name]);
      }
    }
    return url.toString();
  };

  Subscription.prototype._start = function () {
    var generation = ++this._generation;
    this._setState('connecting');
    var ready = !this.token && this.options.getToken
      ? this._refreshToken()
      : Promise.resolve();
    this._openWhen(ready, generation);
  };

  /** Opens the transport once `ready` settles, unless a newer attempt began meanwhile. */
  Subscription.prototype._openWhen = function (ready, generation) {
    var self = this;
    ready.then(function () {
      if (generation !== self._generation) {
        return;
      }
      if (self.mode === 'poll') {
        self._poll(generation);
      } else {
        self._openSource(generation);
      }
    });
  };

  Subscription.prototype._refreshToken = function () {
    var self = this;
    if (!this.options.getToken) {
      return Promise.resolve();
    }
    return Promise.resolve()
      .then(function () {
        return self.options.getToken();
      })
      .then(function (token) {
        if (token) {
          self.token = String(token).trim();
        }
      }, function (e) {
        self._call('onerror', { reason: 'getToken failed', error: e });
      });
  };

  /** Reconnects after `delay` ms, fetching a fresh token first if `refresh`. */
  Subscription.prototype._retry = function (delay, refresh) {
    var self = this;
    this._teardown();
    if (this.state === 'closed') {
      return;
    }
    this._setState('connecting');
    var generation = ++this._generation;
    this._timer = setTimeout(function () {
      self._timer = null;
      self._openWhen(refresh ? self._refreshToken() : Promise.resolve(), generation);
    }, delay);
  };

  Subscription.prototype._backoff = function () {
    this._failures += 1;
    return Math.min(MAX_RETRY_MS, MIN_RETRY_MS * Math.pow(2, this._failures - 1));
  };

  Subscription.prototype._deliver = function (id, event, raw) {
    this._remember(id);
    if (event === 'gap') {
      this._call('ongap', parse(raw));
      return;
    }
    this._call('onmessage', parse(raw), { id: id, event: event || 'message', raw: raw });
  };

  /** The proxy ended the stream on purpose: resume at once (after a new token if asked). */
  Subscription.prototype._proxyClosed = function (raw) {
    var info = parse(raw) || {};
    var reason = info.reason || 'unknown';
    this._call('onclose', reason);
    if (reason === 'token-expired') {
      this._retry(0, true);
    } else if (reason === 'overflow') {
      this._retry(0, false);
    } else {
      this._retry(this._backoff(), false);
    }
  };

  // ---- Server-Sent Events ----------------------------------------------------------

  Subscription.prototype._openSource = function (generation) {
    var self = this;
    var source = new root.EventSource(
      this._url({ lastEventId: this.lastEventId }),
      { withCredentials: !!this.options.withCredentials }
    );
    this._source = source;
    var current = function () {
      return generation === self._generation && self._source === source;
    };
    source.onopen = function () {
      if (!current()) {
        return;
      }
      self._failures = 0;
      self._setState('open');
      self._call('onopen');
    };
    var forward = function (ev) {
      if (current()) {
        self._deliver(ev.lastEventId, ev.type, ev.data);
      }
    };
    source.addEventListener('message', forward);
    source.addEventListener('gap', forward);
    this.events.forEach(function (name) {
      if (name !== 'message' && name !== 'gap' && name !== 'close') {
        source.addEventListener(name, forward);
      }
    });
    source.addEventListener('close', function (ev) {
      if (!current()) {
        return;
      }
      self._remember(ev.lastEventId);
      self._proxyClosed(ev.data);
    });
    source.onerror = function () {
      if (!current()) {
        return;
      }
      // The browser would retry by itself, but with the URL it was first given (a
      // stale `lastEventId=`, an expired token); reconnect with ours instead. A refused
      // request (401/403) gives the same error as a dropped one, so when a token source
      // exists a fresh token is fetched before retrying.
      self._call('onerror', { reason: 'connection lost' });
      self._retry(self._backoff(), !!self.options.getToken);
    };
  };

  // ---- Long-poll fallback ------------------------------------------------------------

  Subscription.prototype._poll = function (generation) {
    var self = this;
    var controller = typeof AbortController === 'function' ? new AbortController() : null;
    this._abort = controller;
    var url = this._url({ mode: 'poll', since: this.lastEventId });
    var init = {
      credentials: this.options.withCredentials ? 'include' : 'same-origin',
      headers: { Accept: 'application/json' },
      cache: 'no-store',
    };
    if (controller) {
      init.signal = controller.signal;
    }
    if (this.state !== 'open') {
      this._setState('open');
      this._call('onopen');
    }
    fetch(url, init)
      .then(function (response) {
        if (generation !== self._generation) {
          return null;
        }
        if (response.status === 401 && self.options.getToken) {
          self._call('onerror', { reason: 'unauthorized', status: 401 });
          self._retry(self._backoff(), true);
          return null;
        }
        if (!response.ok) {
          self._call('onerror', { reason: 'HTTP ' + response.status, status: response.status });
          self._retry(self._backoff(), false);
          return null;
        }
        return response.json();
      })
      .then(function (body) {
        if (!body || generation !== self._generation) {
          return;
        }
        self._failures = 0;
        var events = body.events || [];
        for (var i = 0; i < events.length; i++) {
          var ev = events[i];
          if (ev.event === 'close') {
            self._remember(ev.id);
            self._proxyClosed(ev.data);
            return;
          }
          self._deliver(ev.id, ev.event, ev.data);
          if (generation !== self._generation) {
            return; // a callback closed the subscription
          }
        }
        self._remember(body.cursor);
        self._poll(generation);
      })
      .catch(function (e) {
        if (generation !== self._generation) {
          return;
        }
        self._call('onerror', { reason: 'connection lost', error: e });
        self._retry(self._backoff(), false);
      });
  };

  // ---- Lifecycle ---------------------------------------------------------------------

  Subscription.prototype._teardown = function () {
    if (this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (this._source) {
      this._source.onopen = this._source.onerror = null;
      this._source.close();
      this._source = null;
    }
    if (this._abort) {
      this._abort.abort();
      this._abort = null;
    }
  };

  /** Stops the stream; the resume id stays (and stays stored) for `reconnect()`. */
  Subscription.prototype.close = function () {
    this._generation += 1;
    this._teardown();
    this._setState('closed');
  };

  /** Opens the stream again, resuming after the last event seen. */
  Subscription.prototype.reconnect = function () {
    this.close();
    this._failures = 0;
    this._start();
  };

  /** Forgets the stored resume id (the next connect starts live). */
  Subscription.prototype.forget = function () {
    this.lastEventId = null;
    var store = this.resumeKey && storage();
    if (store) {
      store.removeItem(this.resumeKey);
    }
  };

  return { subscribe: subscribe, version: '0.1.0' };
});

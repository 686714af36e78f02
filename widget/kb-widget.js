/*! kb-widget: the embeddable deflection widget of kb. Vanilla JS, no build step, no globals.
 * Docs: widget/README.md. Budget: 10 KB gzipped (tests/test_widget_size.py). */
(function () {
  'use strict';
  var W = window, D = document;
  // Included twice, or the name is taken: the first definition wins and this copy does nothing.
  if (!W.customElements || W.customElements.get('kb-widget')) return;

  // document.currentScript is only set while this script first runs, so capture it now.
  var ME = D.currentScript, ORIGIN = location.origin, NONCE = '';
  try {
    if (ME && ME.src) ORIGIN = new URL(ME.src, location.href).origin;
    NONCE = ME ? ME.nonce || ME.getAttribute('nonce') || ME.dataset.nonce || '' : '';
  } catch (e) { /* keep the page origin */ }

  var KEY = 'kb-session', DEBOUNCE = 250, SID = '', SHEET = null;
  var I18N = {
    en: {
      help: 'Help', title: 'How can we help?', label: 'Describe your problem',
      ph: 'e.g. Outlook keeps asking for my password', close: 'Close', list: 'Suggested articles',
      one: '1 suggestion', n: '{n} suggestions', none: 'No matching articles',
      noMatch: 'No article matches your request. Send it to the service desk and we will get back to you.',
      full: 'Read the full article', ask: 'Did this solve your problem?',
      yes: 'Yes, this solved it', no: 'No, I still need help', thanks: 'Great! Thank you for letting us know.',
      contact: 'Contact us', still: 'I still need help',
      name: 'Name', email: 'Email', subject: 'Subject', body: 'Description', category: 'Category (optional)',
      send: 'Send request', sending: 'Sending…', fix: 'Please correct the marked fields.',
      done: 'Thank you. Your request {id} has been received; we will reply by email.',
      err: 'Something went wrong and your request was not sent. Please try again.',
      net: 'The help desk cannot be reached right now. Please try again later.',
      slow: 'Too many requests. Please wait a minute and try again.'
    },
    ru: {
      help: 'Помощь', title: 'Чем вам помочь?', label: 'Опишите проблему',
      ph: 'Например: Outlook постоянно спрашивает пароль', close: 'Закрыть', list: 'Подходящие статьи',
      one: 'Найдена 1 подсказка', n: 'Найдено подсказок: {n}', none: 'Подходящих статей нет',
      noMatch: 'Ни одна статья не подходит к вашему запросу. Отправьте его в службу поддержки, и мы ответим вам.',
      full: 'Открыть статью целиком', ask: 'Это решило вашу проблему?',
      yes: 'Да, помогло', no: 'Нет, мне всё ещё нужна помощь', thanks: 'Отлично! Спасибо, что сообщили.',
      contact: 'Связаться с поддержкой', still: 'Мне всё ещё нужна помощь',
      name: 'Имя', email: 'Эл. почта', subject: 'Тема', body: 'Описание', category: 'Категория (необязательно)',
      send: 'Отправить заявку', sending: 'Отправка…', fix: 'Исправьте отмеченные поля.',
      done: 'Спасибо. Заявка {id} принята, мы ответим по электронной почте.',
      err: 'Что-то пошло не так, заявка не отправлена. Попробуйте ещё раз.',
      net: 'Служба поддержки сейчас недоступна. Попробуйте позже.',
      slow: 'Слишком много запросов. Подождите минуту и попробуйте снова.'
    }
  };

  // The host page cannot reach into the shadow root; `.r` resets what it could inherit.
  var CSS = ':host{all:initial;display:block}:host([hidden]){display:none}' +
    '.r{all:initial;display:block;box-sizing:border-box;text-align:start;color:var(--kb-fg,#1f2328);' +
    'font:var(--kb-font-size,15px)/1.45 var(--kb-font,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);' +
    '--a:var(--kb-accent,#0b57d0);--af:var(--kb-accent-fg,#fff);--bg:var(--kb-bg,#fff);--m:var(--kb-muted,#57606a);' +
    '--bd:var(--kb-border,#8c959f);--rd:var(--kb-radius,8px);--fc:var(--kb-focus,#0b57d0)}' +
    '*,::before,::after{box-sizing:inherit}[hidden]{display:none!important}' +
    '.p{background:var(--bg);border:1px solid var(--bd);border-radius:var(--rd);padding:16px}' +
    '.l .p,.lb{position:fixed;right:16px;z-index:var(--kb-z,2147483000);box-shadow:var(--kb-shadow,0 6px 24px rgba(0,0,0,.25))}' +
    '.l .p{bottom:80px;width:min(400px,calc(100vw - 32px));max-height:calc(100vh - 100px);overflow:auto}' +
    '.lb{bottom:16px;border-radius:999px;padding:12px 20px;font-weight:600}' +
    '.hb{display:flex;justify-content:space-between;align-items:center;gap:8px}' +
    'h2{font-size:1.15em;margin:0 0 4px}h3{font-size:1em;margin:12px 0 0}p{margin:8px 0}' +
    'label{display:block;font-weight:600;margin:10px 0 4px}' +
    'button,input,textarea,select{font:inherit;color:inherit;margin:0}' +
    'input,textarea,select{display:block;width:100%;padding:8px 10px;background:var(--bg);border:1px solid var(--bd);border-radius:var(--rd)}' +
    'textarea{resize:vertical}::placeholder{color:var(--m);opacity:1}' +
    'button{cursor:pointer;padding:7px 14px;background:var(--bg);color:var(--a);border:1px solid var(--a);border-radius:var(--rd);margin:4px 4px 0 0}' +
    '.pri,.lb{background:var(--a);color:var(--af)}.cl{border:0;font-size:1.4em;line-height:1;padding:2px 8px}' +
    '.lk{border:0;padding:0;background:none;text-decoration:underline}a{color:var(--a)}' +
    ':focus-visible{outline:3px solid var(--fc);outline-offset:2px}' +
    'ul{list-style:none;margin:8px 0;padding:0}' +
    'li{padding:8px 10px;margin:6px 0;border:1px solid var(--bd);border-radius:var(--rd);cursor:pointer}' +
    'li:hover,li[aria-selected=true]{background:var(--kb-active-bg,#e8f0fe);border-color:var(--a)}' +
    'li[aria-selected=true]{outline:3px solid var(--fc);outline-offset:1px}' +
    '.t{display:block;font-weight:600}.h{display:block;color:var(--m);font-size:.9em}' +
    '.x{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:3;overflow:hidden}' +
    'mark{background:var(--kb-mark-bg,#fff1a8);color:var(--kb-mark-fg,#1f2328);border-radius:2px}' +
    '.e{display:block;color:var(--kb-error,#b3261e);font-size:.9em}' +
    '.an{border-top:1px solid var(--bd);margin-top:8px}' +
    '.v{position:absolute!important;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}';

  function noop() {}
  function txt(v) { return v == null ? '' : String(v); }

  // Builds elements with attributes and text children: never parses markup.
  function h(tag, attrs, kids) {
    var el = D.createElement(tag), k;
    for (k in attrs || {}) if (attrs[k] != null) el.setAttribute(k, attrs[k]);
    (kids || []).forEach(function (c) { el.append(c); });
    return el;
  }

  function uuid() {
    var c = W.crypto;
    if (c.randomUUID) return c.randomUUID(); // secure contexts only; plain-http intranets fall through
    var b = c.getRandomValues(new Uint8Array(16)), i, s = '';
    b[6] = b[6] & 15 | 64; b[8] = b[8] & 63 | 128;
    for (i = 0; i < 16; i++) s += (i === 4 || i === 6 || i === 8 || i === 10 ? '-' : '') + (b[i] + 256).toString(16).slice(1);
    return s;
  }

  // Highlights are [start, end) offsets in code points (Python string indices), not UTF-16 units.
  function highlight(el, passage) {
    var p = passage || {}, cps = Array.from(txt(p.text)), at = 0;
    (Array.isArray(p.highlights) ? p.highlights.filter(Array.isArray) : [])
      .sort(function (a, b) { return a[0] - b[0]; })
      .forEach(function (r) {
        var s = Math.max(+r[0] || 0, at), e = Math.min(+r[1] || 0, cps.length);
        if (e <= s) return;
        el.append(cps.slice(at, s).join(''), h('mark', 0, [cps.slice(s, e).join('')]));
        at = e;
      });
    el.append(cps.slice(at).join(''));
    return el;
  }

  // Server links are resolved against the kb origin; anything but http(s) is dropped.
  function abs(u, base) {
    try {
      var x = new URL(txt(u), base + '/');
      return /^https?:$/.test(x.protocol) ? x.href : '';
    } catch (e) { return ''; }
  }

  function style(root) {
    try {
      if (root.adoptedStyleSheets && W.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
        if (!SHEET) { SHEET = new CSSStyleSheet(); SHEET.replaceSync(CSS); }
        root.adoptedStyleSheets = [SHEET];
        return;
      }
    } catch (e) { /* fall back to a <style> element */ }
    root.append(h('style', {nonce: NONCE || null}, [CSS]));
  }

  class KbWidget extends HTMLElement {
    static get observedAttributes() {
      return ['open', 'locale', 'placeholder', 'mode', 'categories', 'contact-only-after-query'];
    }

    connectedCallback() {
      this._try(() => {
        // Properties set before the element was upgraded hide the accessors: re-apply them.
        Object.keys(PROPS).forEach(p => {
          if (Object.prototype.hasOwnProperty.call(this, p)) { const v = this[p]; delete this[p]; this[p] = v; }
        });
        this._build();
      });
    }

    attributeChangedCallback(name, old, val) {
      this._try(() => {
        if (!this._r) return;
        if (name === 'mode' || name === 'categories') { this._r = null; this._build(); return; }
        if (name !== 'open') return this._tr();
        this._sync();
        if ((old === null) !== (val === null)) {
          if (val !== null) this._sid();
          this._emit(val === null ? 'kb-close' : 'kb-open', {});
        }
      });
    }

    // JS API. Each method catches its own errors: nothing is thrown into the host page.
    open() {
      this._try(() => {
        this._build();
        this.setAttribute('open', '');
        this.$('q').focus();
      });
    }

    close() {
      this._try(() => {
        this._build();
        this._list(false);
        this.removeAttribute('open');
      });
    }

    prefill(text) {
      this._try(() => {
        this._build();
        this.$('q').value = txt(text);
        this.open();
        this._schedule();
      });
    }

    identify(who) {
      this._try(() => {
        this._build();
        this._who = {name: txt(who && who.name), email: txt(who && who.email)};
        this._fill('name', this._who.name);
        this._fill('email', this._who.email);
      });
    }

    setLocale(locale) {
      this._try(() => this.setAttribute('locale', txt(locale)));
    }

    $(id) { return this.shadowRoot.getElementById(id); }

    _try(fn, source) {
      try { return fn.call(this); } catch (e) { this._fail(e, source || 'widget'); }
    }

    _emit(name, detail) {
      this.dispatchEvent(new CustomEvent(name, {bubbles: true, composed: true, detail: detail}));
    }

    // Every failure becomes a kb-error event and a friendly message, never an exception.
    _fail(e, source, status) {
      try {
        var ticket = source === 'ticket', box = this.$(ticket ? 'fe' : 'msg');
        this._emit('kb-error', {source: source, status: status || 0, message: txt(e && e.message || e)});
        if (!box) return;
        box.textContent = this._T()[status === 429 ? 'slow' : ticket ? 'err' : 'net'];
        box.className = 'e';
        box.hidden = false;
      } catch (x) { /* the page is beyond help; stay quiet */ }
    }

    _lang() {
      var l = (this.getAttribute('locale') || D.documentElement.lang || 'en').slice(0, 2).toLowerCase();
      return I18N[l] ? l : 'en';
    }

    _T() { return I18N[this._lang()]; }

    _build() {
      if (this._r) return;
      var root = this.shadowRoot || this.attachShadow({mode: 'open'}), L = this.mode === 'launcher', self = this;
      var cats = txt(this.categories).split(',').map(function (c) { return c.trim(); }).filter(Boolean);
      function row(name, tag, attrs) {
        var id = 'f-' + name;
        return h('div', 0, [
          h('label', {for: id, 'data-t': name}),
          h(tag, Object.assign({id: id, name: name, 'aria-describedby': id + '-e'}, attrs),
            tag === 'select' ? [h('option', {value: ''}, ['—'])].concat(cats.map(function (c) {
              return h('option', {value: c}, [c]);
            })) : []),
          h('span', {id: id + '-e', class: 'e'})
        ]);
      }
      root.replaceChildren();
      style(root);
      this._r = h('div', {class: L ? 'r l' : 'r', part: 'root'}, [
        L ? h('button', {type: 'button', id: 'lbtn', class: 'lb', 'aria-expanded': 'false', 'aria-controls': 'pn'},
          [h('span', {'aria-hidden': 'true'}, ['? ']), h('span', {'data-t': 'help'})]) : '',
        h('div', {id: 'pn', class: 'p', role: L ? 'dialog' : 'region', 'aria-labelledby': 'hd', hidden: L ? '' : null}, [
          h('div', {class: 'hb'}, [
            h('h2', {id: 'hd', 'data-t': 'title'}),
            L ? h('button', {type: 'button', id: 'x', class: 'cl', 'data-l': 'close'}, ['×']) : ''
          ]),
          h('form', {id: 'sf', role: 'search', novalidate: ''}, [
            h('label', {for: 'q', 'data-t': 'label'}),
            h('input', {id: 'q', type: 'text', role: 'combobox', 'aria-autocomplete': 'list', 'aria-expanded': 'false',
              'aria-controls': 'lb', autocomplete: 'off', enterkeyhint: 'search'})
          ]),
          h('p', {id: 'st', class: 'h', role: 'status', 'aria-live': 'polite'}),
          h('ul', {id: 'lb', role: 'listbox', 'data-l': 'list', hidden: ''}),
          h('div', {id: 'an', class: 'an', 'aria-live': 'polite', hidden: ''}, [
            h('h3', {id: 'at'}), h('span', {id: 'as', class: 'h'}), h('p', {id: 'ap'}),
            h('a', {id: 'al', target: '_blank', rel: 'noopener', 'data-t': 'full'}),
            h('div', {id: 'fb', role: 'group', 'aria-labelledby': 'fq', hidden: ''}, [
              h('p', {id: 'fq', 'data-t': 'ask'}),
              h('button', {type: 'button', id: 'yes', class: 'pri', 'data-t': 'yes'}),
              h('button', {type: 'button', id: 'no', 'data-t': 'no'})
            ]),
            h('p', {id: 'ty', 'data-t': 'thanks', tabindex: '-1', hidden: ''})
          ]),
          h('p', {id: 'msg', hidden: ''}),
          h('button', {type: 'button', id: 'ct', class: 'lk', hidden: ''}),
          h('form', {id: 'tf', novalidate: '', hidden: ''}, [
            row('name', 'input', {autocomplete: 'name', required: ''}),
            row('email', 'input', {type: 'email', autocomplete: 'email', required: ''}),
            row('subject', 'input', {required: ''}),
            row('body', 'textarea', {rows: '5', maxlength: '20000', required: ''}),
            cats.length ? row('category', 'select') : '',
            // Honeypot: people never see or reach it, bots fill it in.
            h('div', {class: 'v', 'aria-hidden': 'true'}, [
              h('label', {for: 'f-website'}, ['Website']),
              h('input', {id: 'f-website', name: 'website', tabindex: '-1', autocomplete: 'off'})
            ]),
            h('p', {id: 'fe', class: 'e', role: 'alert'}),
            h('button', {type: 'submit', id: 'send', class: 'pri', 'data-t': 'send'})
          ]),
          h('p', {id: 'dn', tabindex: '-1', hidden: ''})
        ])
      ]);
      root.append(this._r);
      this._items = [];
      this._a = -1;
      this._last = '';
      function on(id, type, fn) {
        var el = self.$(id);
        if (el) el.addEventListener(type, function (e) { self._try(function () { fn.call(self, e); }); });
      }
      this._r.addEventListener('keydown', function (e) { self._try(function () { self._key(e); }); });
      on('q', 'input', this._schedule);
      on('sf', 'submit', function (e) { e.preventDefault(); this._settle(); });
      on('lb', 'mousedown', function (e) { e.preventDefault(); }); // keep focus in the combobox
      on('lb', 'click', function (e) { var li = e.target.closest('li'); if (li) this._pick(+li.dataset.i); });
      on('yes', 'click', function () { this._feedback(true); });
      on('no', 'click', function () { this._feedback(false); });
      on('ct', 'click', function () { this._form(true); });
      on('tf', 'submit', this._submit);
      on('lbtn', 'click', function () { if (this.hasAttribute('open')) this.close(); else this.open(); });
      on('x', 'click', function () { this.close(); this.$('lbtn').focus(); });
      this._tr();
      this._sync();
    }

    // (Re)writes every localised string: used on build and when the locale changes.
    _tr() {
      var T = this._T(), root = this.shadowRoot;
      this._r.lang = this._lang();
      root.querySelectorAll('[data-t]').forEach(function (e) { e.textContent = T[e.dataset.t]; });
      root.querySelectorAll('[data-l]').forEach(function (e) { e.setAttribute('aria-label', T[e.dataset.l]); });
      this.$('q').placeholder = this.placeholder || T.ph;
      this._contact();
    }

    _sync() {
      var b = this.$('lbtn'), open = this.hasAttribute('open');
      if (!b) return;
      this.$('pn').hidden = !open;
      b.setAttribute('aria-expanded', open);
    }

    _key(e) {
      var k = e.key, n = this._items.length, a = this._a, lb = this.$('lb');
      if (e.target === this.$('q')) {
        if ((k === 'ArrowDown' || k === 'ArrowUp') && n) {
          e.preventDefault();
          if (lb.hidden) { this._list(true); a = -1; }
          this._active(k === 'ArrowDown' ? (a + 1) % n : (a <= 0 ? n : a) - 1);
          return;
        }
        if (k === 'Enter') {
          e.preventDefault();
          if (!lb.hidden && a >= 0) this._pick(a); else this._settle();
          return;
        }
        if (k === 'Escape' && !lb.hidden) { e.preventDefault(); this._list(false); return; }
      }
      if (k === 'Escape' && this.$('lbtn') && this.hasAttribute('open')) {
        e.preventDefault();
        this.close();
        this.$('lbtn').focus();
      }
    }

    _schedule() {
      var self = this;
      clearTimeout(this._t);
      this._t = setTimeout(function () { self._try(self._settle); }, DEBOUNCE);
    }

    // The user paused: record the settled text and fetch suggestions, cancelling stale ones.
    _settle() {
      clearTimeout(this._t);
      var self = this, text = this.$('q').value.trim(), ac;
      if (text === this._last) return;
      this._last = text;
      if (this._ac) this._ac.abort();
      this._ac = null;
      if (text.length < 2) return this._show(null);
      this._asked = true;
      this._contact();
      this._track('request_settled', {text: text});
      if (!this.$('tf').hidden) this._prefill();
      ac = this._ac = new AbortController();
      fetch(this.apiOrigin + '/api/v1/suggest?' + new URLSearchParams({
        q: text, limit: this.limit, locale: this._lang(), session: this._sid()
      }), {signal: ac.signal})
        .then(function (r) { if (!r.ok) throw {status: r.status, message: 'suggest ' + r.status}; return r.json(); })
        .then(function (d) { if (self._ac === ac) self._try(function () { self._show(d); }); }, function (e) {
          if (self._ac !== ac) return; // aborted or superseded
          var s = e && e.status;
          // 400/422: the query is too long or empty for the API; treat it as unanswered.
          if (s === 400 || s === 422) self._try(function () { self._show({answered: false}); });
          else self._fail(e, 'suggest', s);
        });
    }

    _show(d) {
      var T = this._T(), n, items = d && d.answered && Array.isArray(d.suggestions) ? d.suggestions.slice(0, this.limit) : [];
      this._items = items;
      this._rid = d && d.request_id || '';
      this.$('lb').replaceChildren.apply(this.$('lb'), items.map(this._option, this));
      this.$('an').hidden = this.$('msg').hidden = true;
      clearTimeout(this._ft);
      this._list(n = items.length);
      this.$('st').textContent = d ? n ? n === 1 ? T.one : T.n.replace('{n}', n) : T.none : '';
      if (!d) return;
      if (n) {
        this._track('suggestions_shown', {request_id: this._rid, items: items.map(function (s) {
          return {slug: s.slug, confidence: s.confidence};
        })});
      } else {
        // Honest "no match": no weak results, and the form straight away.
        this._say('noMatch');
        this._form(false);
      }
      this._emit('kb-suggestions', {request_id: this._rid, query: d.query, answered: !!d.answered, suggestions: items});
    }

    _option(s, i) {
      return h('li', {id: 'o' + i, role: 'option', 'aria-selected': 'false', 'data-i': i}, [
        h('span', {class: 't'}, [txt(s.title)]),
        h('span', {class: 'h'}, [txt(s.section)]),
        highlight(h('span', {class: 'x'}), s.passage)
      ]);
    }

    _list(show) {
      this.$('lb').hidden = !show;
      this.$('q').setAttribute('aria-expanded', !!show);
      if (!show) this._active(-1);
    }

    _active(i) {
      var q = this.$('q'), li;
      this._a = i;
      this.$('lb').querySelectorAll('li').forEach(function (o, j) { o.setAttribute('aria-selected', i === j); });
      if (i < 0) return q.removeAttribute('aria-activedescendant');
      q.setAttribute('aria-activedescendant', 'o' + i);
      li = this.$('o' + i);
      if (li.scrollIntoView) li.scrollIntoView({block: 'nearest'});
    }

    // Opens a suggestion inline; asks "Did this solve your problem?" after feedback-delay ms.
    _pick(i) {
      var s = this._items[i], self = this, a = this.$('al'), u;
      if (!s) return;
      this._list(false);
      this._open = {s: s, rid: this._rid};
      this.$('at').textContent = txt(s.title);
      this.$('as').textContent = txt(s.section);
      this.$('ap').replaceChildren();
      highlight(this.$('ap'), s.passage);
      u = abs(s.url, this.apiOrigin);
      if (u) a.href = u; else a.removeAttribute('href');
      this.$('fb').hidden = this.$('ty').hidden = true;
      this.$('an').hidden = false;
      clearTimeout(this._ft);
      this._ft = setTimeout(function () { self._try(function () { self.$('fb').hidden = false; }); }, this.feedbackDelay);
      this._track('suggestion_opened', {request_id: this._rid, slug: s.slug});
      this._emit('kb-suggestion-open', {request_id: this._rid, slug: s.slug, url: u});
    }

    _feedback(helpful) {
      var o = this._open, d;
      if (!o) return;
      d = {request_id: o.rid, slug: o.s.slug, helpful: helpful};
      this._post('/api/v1/feedback', Object.assign({session: this._sid()}, d), true).catch(noop);
      this._track('feedback', d);
      this._emit('kb-feedback', d);
      this.$('fb').hidden = true;
      if (!helpful) return this._form(true);
      this.$('ty').hidden = false;
      this.$('ty').focus();
    }

    _say(key) {
      var m = this.$('msg');
      m.textContent = this._T()[key];
      m.className = '';
      m.hidden = false;
    }

    _contact() {
      var c = this.$('ct');
      c.textContent = this._T()[this._asked ? 'still' : 'contact'];
      c.hidden = !this.$('tf').hidden || !this._asked && this.contactOnlyAfterQuery;
    }

    // A field is (re)filled only while the user has not changed what we put there.
    _fill(name, value) {
      var f = this.$('f-' + name);
      if (f && (!f.value || f.value === f._p)) f.value = f._p = txt(value);
    }

    _prefill() {
      var t = this.$('q').value.trim(), w = this._who || {};
      this._fill('name', w.name);
      this._fill('email', w.email);
      this._fill('subject', t.length > 80 ? t.slice(0, 79).replace(/\s+\S*$/, '') + '…' : t);
      this._fill('body', t);
    }

    _form(focus) {
      var tf = this.$('tf'), self = this, first;
      if (tf.hidden) {
        tf.hidden = false;
        this.$('dn').hidden = true;
        this._track('ticket_started', {});
      }
      this._prefill();
      this._contact();
      if (!focus) return;
      first = ['name', 'email', 'subject', 'body'].map(function (n) { return self.$('f-' + n); })
        .filter(function (f) { return !f.value; })[0];
      (first || this.$('f-name')).focus();
    }

    _submit(e) {
      e.preventDefault();
      if (this._busy) return;
      var self = this, f = this.$('tf'), btn = this.$('send'), body, cat = this.$('f-category');
      function v(n) { return self.$('f-' + n).value.trim(); }
      f.querySelectorAll('.e').forEach(function (x) { x.textContent = ''; });
      f.querySelectorAll('[aria-invalid]').forEach(function (x) { x.removeAttribute('aria-invalid'); });
      body = {name: v('name'), email: v('email'), subject: v('subject'), body: v('body'),
        locale: this._lang(), session: this._sid(), website: this.$('f-website').value};
      if (cat && cat.value) body.category = cat.value;
      if (this._rid) body.request_id = this._rid;
      this._busy = btn.disabled = true;
      btn.textContent = this._T().sending;
      function idle() { self._busy = btn.disabled = false; btn.textContent = self._T().send; }
      this._post('/api/v1/tickets', body).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          idle();
          self._try(function () { self._reply(r.status, j); }, 'ticket');
        });
      }, function (err) { idle(); self._fail(err, 'ticket'); });
    }

    _reply(status, j) {
      var self = this, ex = j && j.extra, first, rest = [];
      if (status === 200 || status === 201) return this._created(j);
      if (status !== 400 && status !== 422) return this._fail({message: j && j.detail}, 'ticket', status);
      // Litestar: extra = [{key, message}]; also accept {field: message}.
      (Array.isArray(ex) ? ex : ex && typeof ex === 'object' ? Object.keys(ex).map(function (k) {
        return {key: k, message: ex[k]};
      }) : []).forEach(function (x) {
        var k = txt(x && x.key).split(/[.[\]'"$]+/).filter(Boolean).pop(), el = k !== 'website' && self.$('f-' + k);
        if (!el) return rest.push(txt(x && x.message));
        el.setAttribute('aria-invalid', 'true');
        self.$('f-' + k + '-e').textContent = txt(x.message);
        first = first || el;
      });
      this.$('fe').textContent = [this._T().fix].concat(rest).join(' ');
      if (first) first.focus();
      this._emit('kb-error', {source: 'ticket', status: status, message: txt(j && j.detail)});
    }

    _created(t) {
      var id = txt(t && t.id), dn = this.$('dn');
      this.$('tf').hidden = true;
      this.$('f-subject').value = this.$('f-body').value = '';
      dn.textContent = this._T().done.replace('{id}', id);
      dn.hidden = false;
      dn.focus();
      this._contact();
      this._track('ticket_created', {ticket_id: id});
      this._emit('kb-ticket-created', t);
      if (typeof this.onTicketCreated === 'function') {
        try { this.onTicketCreated(t); } catch (e) {
          this._emit('kb-error', {source: 'onTicketCreated', status: 0, message: txt(e && e.message)});
        }
      }
    }

    _post(path, body, keepalive) {
      try {
        return fetch(this.apiOrigin + path, {method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify(body), keepalive: !!keepalive});
      } catch (e) { return Promise.reject(e); }
    }

    // Funnel events are fire-and-forget: keepalive survives navigation, failures are swallowed.
    _track(type, data) {
      this._post('/api/v1/events', {session: this._sid(), type: type, data: data}, true).catch(noop);
    }

    _sid() {
      if (SID) return SID;
      try { SID = sessionStorage.getItem(KEY) || ''; } catch (e) { /* storage blocked: memory only */ }
      if (SID) return SID;
      SID = uuid();
      try { sessionStorage.setItem(KEY, SID); } catch (e) { /* memory only */ }
      this._track('session_start', {});
      return SID;
    }
  }

  // Attributes mirrored as camelCase properties; the getter parses and applies the default.
  var PROPS = {
    locale: function (v) { return v || this._lang(); },
    apiOrigin: function (v) { return txt(v || ORIGIN).replace(/\/+$/, ''); },
    placeholder: 0,
    categories: 0,
    mode: function (v) { return v === 'launcher' ? v : 'inline'; },
    limit: function (v) { return Math.min(3, Math.max(1, parseInt(v, 10) || 3)); },
    feedbackDelay: function (v) { return v != null && v !== '' && +v >= 0 ? +v : 4000; },
    contactOnlyAfterQuery: function (v) { return v !== 'false'; }
  };
  Object.keys(PROPS).forEach(function (p) {
    var a = p.replace(/[A-Z]/g, function (c) { return '-' + c.toLowerCase(); }), f = PROPS[p];
    Object.defineProperty(KbWidget.prototype, p, {
      configurable: true,
      get: function () { var v = this.getAttribute(a); return f ? f.call(this, v) : v; },
      set: function (v) { if (v == null) this.removeAttribute(a); else this.setAttribute(a, v); }
    });
  });

  try { W.customElements.define('kb-widget', KbWidget); } catch (e) { return; }

  // Loaded by a plain <script> tag: add one floating launcher unless the page places its own.
  function launch() {
    try {
      var ds = ME.dataset, el, k;
      if (ds.mode === 'inline' || D.querySelector('kb-widget')) return;
      el = D.createElement('kb-widget');
      for (k in ds) if (k !== 'nonce') el.setAttribute(k.replace(/[A-Z]/g, function (c) { return '-' + c.toLowerCase(); }), ds[k]);
      el.setAttribute('mode', 'launcher');
      D.body.append(el);
    } catch (e) { /* never break the host page */ }
  }
  if (ME && ME.src) {
    if (D.readyState === 'loading') D.addEventListener('DOMContentLoaded', launch); else launch();
  }
})();

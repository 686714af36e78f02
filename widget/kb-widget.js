/*! kb-widget: the embeddable deflection widget of kb. Vanilla JS, no build step, no globals.
 * Docs: widget/README.md. Budget: 10 KB gzipped (tests/test_widget_size.py). */
(function () {
  'use strict';
  const W = window, D = document;
  // Included twice, or the name is taken: the first definition wins and this copy does nothing.
  if (!W.customElements || W.customElements.get('kb-widget')) return;

  // document.currentScript is only set while this script first runs, so capture it now.
  const ME = D.currentScript;
  let ORIGIN = location.origin, NONCE = '', SID = '', SHEET = null;
  try {
    if (ME && ME.src) ORIGIN = new URL(ME.src, location.href).origin;
    NONCE = ME ? ME.nonce || ME.getAttribute('nonce') || ME.dataset.nonce || '' : '';
  } catch (e) { /* keep the page origin */ }

  const KEY = 'kb-session', DEBOUNCE = 250, MODES = ['self-service', 'neutral', 'ask-first'];
  // Until GET /api/v1/widget/config answers (or if it cannot): the server's default mode and settle
  // time; no length limits (the server's own checks answer with field errors).
  const DEFAULTS = {contact_mode: MODES[0], settle_ms: 1500, limits: {}};
  const PATIENCE = 4; // a person who types on after a settle gets twice the wait, up to 4 times
  const CONFIGS = {}; // api origin -> promise of its config: one request per page and server
  const I18N = {
    en: {
      help: 'Help', title: 'How can we help?', label: 'Describe your problem',
      ph: 'e.g. Outlook keeps asking for my password', close: 'Close', list: 'Suggested articles',
      one: '1 suggestion', n: '{n} suggestions', none: 'No matching articles',
      noMatch: 'No article matches your request. Send it to us and we will reply.',
      full: 'Read the full article', ask: 'Did this solve your problem?',
      yes: 'Yes, this solved it', no: 'No, I still need help', thanks: 'Great, thank you!',
      contact: 'Contact us', still: 'I still need help',
      name: 'Name', email: 'Email', subject: 'Subject', body: 'Description', category: 'Category (optional)',
      send: 'Send request', sending: 'Sending…', fix: 'Please correct the marked fields.',
      done: 'Request {id} received. We will reply by email.',
      err: 'Your request was not sent. Please try again.',
      net: 'The help desk is unreachable. Please try again later.',
      slow: 'Too many requests. Please wait a minute.'
    },
    ru: {
      help: 'Помощь', title: 'Чем вам помочь?', label: 'Опишите проблему',
      ph: 'Например: Outlook всё время просит пароль', close: 'Закрыть', list: 'Подходящие статьи',
      one: 'Найдена 1 подсказка', n: 'Найдено подсказок: {n}', none: 'Подходящих статей нет',
      noMatch: 'Подходящей статьи нет. Отправьте запрос нам, и мы ответим.',
      full: 'Открыть статью целиком', ask: 'Это решило вашу проблему?',
      yes: 'Да, помогло', no: 'Нет, мне всё ещё нужна помощь', thanks: 'Отлично, спасибо!',
      contact: 'Написать нам', still: 'Мне всё ещё нужна помощь',
      name: 'Имя', email: 'Эл. почта', subject: 'Тема', body: 'Описание', category: 'Категория (необязательно)',
      send: 'Отправить заявку', sending: 'Отправка…', fix: 'Исправьте отмеченные поля.',
      done: 'Заявка {id} принята. Мы ответим по почте.',
      err: 'Заявка не отправлена. Попробуйте ещё раз.',
      net: 'Поддержка недоступна. Попробуйте позже.',
      slow: 'Слишком много запросов. Подождите минуту.'
    }
  };

  // The host page cannot reach into the shadow root; `.r` resets what it could inherit.
  const CSS = ':host{all:initial;display:block}:host([hidden]){display:none}' +
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
    '#ap,.x{white-space:pre-line}.x{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:3;overflow:hidden}' +
    'mark{background:var(--kb-mark-bg,#fff1a8);color:var(--kb-mark-fg,#1f2328);border-radius:2px}' +
    '.e{display:block;color:var(--kb-error,#b3261e);font-size:.9em}' +
    '.an{border-top:1px solid var(--bd);margin-top:8px}' +
    '.v{position:absolute!important;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}';

  const noop = () => {};
  const txt = v => v == null ? '' : String(v);
  const kebab = s => s.replace(/[A-Z]/g, c => '-' + c.toLowerCase());
  const section = s => s.section === s.title ? '' : txt(s.section); // a lead section repeats the title

  // Elements are built node by node (no innerHTML): server text can only ever be text.
  function h(tag, attrs, kids) {
    const el = D.createElement(tag);
    for (const k in attrs || {}) if (attrs[k] != null) el.setAttribute(k, attrs[k]);
    (kids || []).forEach(c => el.append(c));
    return el;
  }

  // Highlights are [start, end) offsets in code points (Python string indices), not UTF-16 units.
  function highlight(el, passage) {
    const p = passage || {}, cps = Array.from(txt(p.text)), cut = (a, b) => cps.slice(a, b).join('');
    let at = 0;
    (Array.isArray(p.highlights) ? p.highlights.filter(Array.isArray) : [])
      .sort((a, b) => a[0] - b[0])
      .forEach(r => {
        const s = Math.max(+r[0] || 0, at), e = Math.min(+r[1] || 0, cps.length);
        if (e <= s) return;
        el.append(cut(at, s), h('mark', 0, [cut(s, e)]));
        at = e;
      });
    el.append(cut(at));
    return el;
  }

  // Server links are resolved against the kb origin; anything but http(s) is dropped.
  function abs(u, base) {
    try {
      const x = new URL(txt(u), base + '/');
      return /^https?:$/.test(x.protocol) ? x.href : '';
    } catch (e) { return ''; }
  }

  function style(root) {
    try {
      if (root.adoptedStyleSheets && CSSStyleSheet.prototype.replaceSync) {
        if (!SHEET) { SHEET = new CSSStyleSheet(); SHEET.replaceSync(CSS); }
        root.adoptedStyleSheets = [SHEET];
        return;
      }
    } catch (e) { /* fall back to a <style> element */ }
    root.append(h('style', {nonce: NONCE || null}, [CSS]));
  }

  class KbWidget extends HTMLElement {
    static get observedAttributes() {
      return ['open', 'locale', 'placeholder', 'mode', 'categories', 'contact-mode', 'contact-only-after-query'];
    }

    connectedCallback() {
      this._try(() => {
        // Properties set before the element was upgraded hide the accessors: re-apply them.
        for (const p in PROPS) {
          if (Object.prototype.hasOwnProperty.call(this, p)) { const v = this[p]; delete this[p]; this[p] = v; }
        }
        this._build();
      });
    }

    attributeChangedCallback(name, old, val) {
      this._try(() => {
        if (!this._r) return;
        if (name === 'mode' || name === 'categories') { this._r = null; return this._build(); }
        if (name !== 'open') return this._tr();
        this._sync();
        if ((old === null) !== (val === null)) {
          if (val !== null) this._sid();
          this._emit(val === null ? 'kb-close' : 'kb-open', {});
        }
      });
    }

    // The JS API. Nothing is ever thrown into the host page.
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
        this._typed();
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
      this.dispatchEvent(new CustomEvent(name, {bubbles: true, composed: true, detail}));
    }

    // A failure becomes a kb-error event and a friendly message.
    _fail(e, source, status) {
      try {
        const ticket = source === 'ticket', box = this.$(ticket ? 'fe' : 'msg');
        this._emit('kb-error', {source, status: status || 0, message: txt(e && e.message || e)});
        box.textContent = this._T()[status === 429 ? 'slow' : ticket ? 'err' : 'net'];
        box.className = 'e';
        box.hidden = false;
      } catch (x) { /* not built yet, or the page is beyond help: stay quiet */ }
    }

    _lang() {
      const l = (this.getAttribute('locale') || D.documentElement.lang || 'en').slice(0, 2).toLowerCase();
      return I18N[l] ? l : 'en';
    }

    _T() { return I18N[this._lang()]; }

    _build() {
      if (this._r) return;
      const root = this.shadowRoot || this.attachShadow({mode: 'open'}), L = this.mode === 'launcher';
      const cats = txt(this.categories).split(',').map(c => c.trim()).filter(Boolean);
      const row = (name, tag, attrs) => h('div', 0, [
        h('label', {for: 'f-' + name, 'data-t': name}),
        h(tag, Object.assign({id: 'f-' + name, name, 'aria-describedby': 'f-' + name + '-e'}, attrs),
          tag === 'select' ? [h('option', {value: ''}, ['—'])].concat(cats.map(c => h('option', {value: c}, [c]))) : []),
        h('span', {id: 'f-' + name + '-e', class: 'e'})
      ]);
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
            row('body', 'textarea', {rows: '5', required: ''}),
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
      this._sent = this._shown = this._settled = this._formBy = '';
      const on = (id, type, fn) => {
        const el = id ? this.$(id) : this._r;
        if (el) el.addEventListener(type, e => this._try(() => fn.call(this, e)));
      };
      on('', 'keydown', this._key);
      on('q', 'input', this._typed);
      // IME: nothing is asked or settled while a word is being composed; its end counts as typing.
      on('q', 'compositionstart', () => { this._composing = true; });
      on('q', 'compositionend', () => { this._composing = false; this._typed(); });
      // Leaving the field settles the request, but not switching to another window and back.
      on('q', 'blur', () => D.hasFocus() && this._settle('blur'));
      on('sf', 'submit', e => { e.preventDefault(); this._settle('enter'); });
      on('lb', 'mousedown', e => e.preventDefault()); // keep focus in the combobox
      on('lb', 'click', e => { const li = e.target.closest('li'); if (li) this._pick(+li.dataset.i); });
      on('yes', 'click', () => this._feedback(true));
      on('no', 'click', () => this._feedback(false));
      on('ct', 'click', () => this._form(true, 'contact'));
      on('tf', 'submit', this._submit);
      on('lbtn', 'click', () => this.hasAttribute('open') ? this.close() : this.open());
      on('x', 'click', () => { this.close(); this.$('lbtn').focus(); });
      this._tr();
      this._sync();
      this._configure();
    }

    // The server owns the contact mode, the settle time and the field limits (kb/storage/settle.py).
    _configure() {
      const origin = this.apiOrigin;
      CONFIGS[origin] = CONFIGS[origin] || fetch(origin + '/api/v1/widget/config')
        .then(r => r.ok ? r.json() : {}).catch(() => ({}));
      CONFIGS[origin].then(c => this._try(() => {
        this._config = Object.assign({}, DEFAULTS, c && typeof c === 'object' ? c : {});
        const limits = this._cfg().limits;
        ['name', 'email', 'subject', 'body'].forEach(n => { if (limits[n] > 0) this.$('f-' + n).maxLength = limits[n]; });
        this._contact();
      }));
    }

    _cfg() { return this._config || DEFAULTS; }

    _tr() {
      const T = this._T(), all = s => this.shadowRoot.querySelectorAll(s);
      this._r.lang = this._lang();
      all('[data-t]').forEach(e => { e.textContent = T[e.dataset.t]; });
      all('[data-l]').forEach(e => e.setAttribute('aria-label', T[e.dataset.l]));
      this.$('q').placeholder = this.placeholder || T.ph;
      this._contact();
    }

    _sync() {
      const b = this.$('lbtn'), open = this.hasAttribute('open');
      if (!b) return;
      this.$('pn').hidden = !open;
      b.setAttribute('aria-expanded', open);
    }

    _key(e) {
      const k = e.key, n = this._items.length, lb = this.$('lb');
      let a = this._a;
      if (e.target === this.$('q')) {
        if ((k === 'ArrowDown' || k === 'ArrowUp') && n) {
          e.preventDefault();
          if (lb.hidden) { this._list(true); a = -1; }
          return this._active(k === 'ArrowDown' ? (a + 1) % n : (a <= 0 ? n : a) - 1);
        }
        if (k === 'Enter') {
          // This Enter commits the composed word (Safari sends it after compositionend, as key 229).
          if (e.isComposing || this._composing || e.keyCode === 229) return;
          e.preventDefault();
          return !lb.hidden && a >= 0 ? this._pick(a) : this._settle('enter');
        }
        if (k === 'Escape' && !lb.hidden) { e.preventDefault(); return this._list(false); }
      }
      if (k === 'Escape' && this.$('lbtn') && this.hasAttribute('open')) {
        e.preventDefault();
        this.close();
        this.$('lbtn').focus();
      }
    }

    _text() { return this.$('q').value.trim(); }

    // Every change of the text. Suggestions follow the typing (debounced); the request settles only
    // after settle_ms without typing, on Enter or on leaving the field, never mid-composition.
    _typed() {
      if (this._composing) return;
      clearTimeout(this._debounce);
      clearTimeout(this._idle);
      // Typing on after a pause we took for the end: this person pauses longer mid-sentence.
      if (this._settledBy === 'idle' && this._continues(this._settled)) this._patience = Math.min(2 * this._wait(), PATIENCE);
      this._settled = '';
      this._debounce = setTimeout(() => this._try(this._fetch), DEBOUNCE);
      this._idle = setTimeout(() => this._try(() => this._settle('idle')), this._cfg().settle_ms * this._wait());
      // What was said about the previous text no longer holds; a form the person opened follows the text.
      this.$('msg').hidden = true;
      if (this._formBy === 'miss') this._hideForm();
      if (!this.$('tf').hidden) this._prefill();
      if (!this._items.length) this.$('st').textContent = '';
    }

    _wait() { return this._patience || 1; }

    // Whether the current text keeps every finished word of `earlier` (a last word may be corrected).
    _continues(earlier) {
      const low = t => t.toLowerCase(), now = low(this.$('q').value.trimStart()), words = low(earlier).split(/\s+/);
      return !!earlier && now.length > earlier.length && (now.startsWith(low(earlier)) ||
        words.length > 1 && now.startsWith(words.slice(0, -1).join(' ') + ' '));
    }

    // Ask for suggestions for the current text, cancelling a request still in flight.
    _fetch() {
      clearTimeout(this._debounce);
      const text = this._text();
      if (text === this._sent) return;
      this._sent = text;
      if (this._ac) this._ac.abort();
      this._ac = null;
      if (text.length < 2) return this._show(null, text);
      // The API refuses longer texts: a miss, so the whole text goes into the form.
      if (text.length > (this._cfg().limits.query || Infinity)) return this._show({answered: false, query: text}, text);
      const ac = this._ac = new AbortController();
      this._sid().then(session => fetch(this.apiOrigin + '/api/v1/suggest?' + new URLSearchParams({
        q: text, limit: this.limit, locale: this._lang(), session
      }), {signal: ac.signal}))
        .then(r => { if (!r.ok) throw {status: r.status, message: 'suggest ' + r.status}; return r.json(); })
        .then(d => this._ac === ac && this._try(() => this._show(d, text)), e => {
          if (this._ac !== ac) return; // aborted or superseded
          const s = e && e.status;
          // 400/422: the API refuses the query (too long); treat it as unanswered.
          if (s === 400 || s === 422) return this._try(() => this._show({answered: false, query: text}, text));
          this._sent = ''; // so that Enter retries
          this._fail(e, 'suggest', s);
        });
    }

    // An answer for `text`: confident suggestions show at once, "no match" waits for the settle.
    _show(d, text) {
      const T = this._T(), items = d && d.answered && Array.isArray(d.suggestions) ? d.suggestions.slice(0, this.limit) : [];
      const n = items.length;
      this._items = items;
      this._shown = text;
      this._rid = d && d.request_id || '';
      this.$('lb').replaceChildren(...items.map((s, i) => this._option(s, i)));
      this.$('an').hidden = true;
      clearTimeout(this._ft);
      this._list(n);
      this.$('st').textContent = n ? n === 1 ? T.one : T.n.replace('{n}', n) : '';
      if (n && this._formBy === 'miss') this._hideForm(); // never the form under confident suggestions
      this._contact();
      if (d) this._emit('kb-suggestions', {request_id: this._rid, query: d.query || text, answered: !!d.answered, suggestions: items});
      if (this._settled === text) this._conclude();
    }

    // The person is done with this request: `by` is idle, enter, blur, open, contact or no.
    _settle(by) {
      const text = this._text();
      if (this._composing || text.length < 2) return;
      clearTimeout(this._idle);
      // Once per text; an Enter after a pause is still worth telling the server (it ends the request).
      if (this._settled === text && (by !== 'enter' || this._settledBy === 'enter')) return;
      this._settled = text;
      this._settledBy = by;
      if (this._shown === text) this._conclude(); else this._fetch(); // _show concludes on arrival
    }

    _conclude() {
      const first = this._concluded !== this._settled, items = this._items;
      this._concluded = this._settled;
      this._asked = true;
      this._track('request_settled', {request_id: this._rid, text: this._settled, by: this._settledBy});
      if (first && items.length) {
        this._track('suggestions_shown', {request_id: this._rid, items: items.map(s => ({slug: s.slug, confidence: s.confidence}))});
      } else if (first) {
        // An honest "no match": no weak results, and the form, without taking the focus.
        this.$('st').textContent = this._T().none;
        this._say('noMatch');
        this._form(false, 'miss');
      }
      this._contact();
    }

    _option(s, i) {
      return h('li', {id: 'o' + i, role: 'option', 'aria-selected': 'false', 'data-i': i}, [
        h('span', {class: 't'}, [txt(s.title)]),
        h('span', {class: 'h'}, [section(s)]),
        highlight(h('span', {class: 'x'}), s.passage)
      ]);
    }

    _list(show) {
      this.$('lb').hidden = !show;
      this.$('q').setAttribute('aria-expanded', !!show);
      if (!show) this._active(-1);
    }

    _active(i) {
      const q = this.$('q'), li = this.$('o' + i);
      this._a = i;
      this.$('lb').querySelectorAll('li').forEach((o, j) => o.setAttribute('aria-selected', i === j));
      if (!li) return q.removeAttribute('aria-activedescendant');
      q.setAttribute('aria-activedescendant', li.id);
      li.scrollIntoView({block: 'nearest'});
    }

    _pick(i) {
      const s = this._items[i], a = this.$('al'), ap = this.$('ap');
      if (!s) return;
      const u = abs(s.url, this.apiOrigin);
      clearTimeout(this._idle);
      clearTimeout(this._debounce);
      if (this._shown === this._text()) this._settle('open');
      else { // picked from the list of an earlier text: that answer stays, no newer one replaces it
        if (this._ac) this._ac.abort();
        this._ac = null;
        this._sent = this._settled = this._text();
      }
      this._list(false);
      this._open = {s, rid: this._rid};
      this.$('at').textContent = txt(s.title);
      this.$('as').textContent = section(s);
      ap.replaceChildren();
      highlight(ap, s.passage);
      if (u) a.href = u; else a.removeAttribute('href');
      this.$('fb').hidden = this.$('ty').hidden = true;
      this.$('an').hidden = false;
      clearTimeout(this._ft);
      this._ft = setTimeout(() => this._try(() => { this.$('fb').hidden = false; this._contact(); }), this.feedbackDelay);
      this._track('suggestion_opened', {request_id: this._rid, slug: s.slug});
      this._emit('kb-suggestion-open', {request_id: this._rid, slug: s.slug, url: u});
    }

    _feedback(helpful) {
      const o = this._open;
      if (!o) return;
      const d = {request_id: o.rid, slug: o.s.slug, helpful};
      // The server records the `feedback` funnel event itself when it stores the answer.
      this._sid().then(session => this._post('/api/v1/feedback', Object.assign({session}, d), true)).catch(noop);
      this._emit('kb-feedback', d);
      this.$('fb').hidden = true;
      this._contact();
      if (!helpful) return this._form(true, 'no');
      this.$('ty').hidden = false;
      this.$('ty').focus();
    }

    _say(key) {
      const m = this.$('msg');
      m.textContent = this._T()[key];
      m.className = '';
      m.hidden = false;
    }

    // Where and whether to offer contact: the contact mode (self-service: after one request;
    // neutral: from the start; ask-first: from the start, above the search). Never next to the
    // form, nor next to "Did this solve it?", which offers it.
    _contact() {
      const c = this.$('ct'), mode = this.contactMode, first = mode === 'ask-first';
      if (!c) return;
      c.textContent = this._T()[this._asked ? 'still' : 'contact'];
      c.className = first ? 'pri' : 'lk';
      if (first && c.nextElementSibling !== this.$('sf')) this.$('sf').before(c);
      if (!first && c.previousElementSibling !== this.$('msg')) this.$('msg').after(c);
      c.hidden = !this.$('tf').hidden || !this.$('an').hidden && !this.$('fb').hidden || !this._asked && mode === 'self-service';
    }

    // A field is (re)filled only while it still holds what we put there.
    _fill(name, value) {
      const f = this.$('f-' + name);
      if (f && (!f.value || f.value === f._p)) f.value = f._p = txt(value);
    }

    _prefill() {
      const t = this.$('q').value.trim(), w = this._who || {};
      this._fill('name', w.name);
      this._fill('email', w.email);
      this._fill('subject', t.length > 80 ? t.slice(0, 79).replace(/\s+\S*$/, '') + '…' : t);
      this._fill('body', t);
    }

    // `by`: miss (a settled request nothing answered), contact or no (the person asked for it).
    _form(focus, by) {
      const tf = this.$('tf');
      if (tf.hidden || by !== 'miss') this._formBy = by;
      if (tf.hidden) {
        tf.hidden = false;
        this.$('dn').hidden = true;
        this._track('ticket_started', {request_id: this._rid, text: this._text(), by});
      }
      this._prefill();
      this._contact();
      if (focus) (['name', 'email', 'subject', 'body'].map(n => this.$('f-' + n)).find(f => !f.value) || this.$('f-name')).focus();
    }

    _submit(e) {
      e.preventDefault();
      if (this._busy) return;
      const f = this.$('tf'), btn = this.$('send'), cat = this.$('f-category'), v = n => this.$('f-' + n).value.trim();
      f.querySelectorAll('.e').forEach(x => { x.textContent = ''; });
      f.querySelectorAll('[aria-invalid]').forEach(x => x.removeAttribute('aria-invalid'));
      const body = {name: v('name'), email: v('email'), subject: v('subject'), body: v('body'),
        locale: this._lang(), website: this.$('f-website').value};
      if (cat && cat.value) body.category = cat.value;
      if (this._rid) body.request_id = this._rid;
      const idle = busy => { this._busy = btn.disabled = busy; btn.textContent = this._T()[busy ? 'sending' : 'send']; };
      idle(true);
      this._sid().then(session => this._post('/api/v1/tickets', Object.assign(body, {session}))).then(
        r => r.json().catch(() => ({})).then(j => { idle(false); this._try(() => this._reply(r.status, j), 'ticket'); }),
        err => { idle(false); this._fail(err, 'ticket'); });
    }

    _reply(status, j) {
      const ex = j && j.extra, rest = [];
      if (status === 200 || status === 201) return this._created(j);
      if (status !== 400 && status !== 422) return this._fail({message: j && j.detail}, 'ticket', status);
      // Litestar sends extra = [{key, message}]; {field: message} is accepted too.
      (Array.isArray(ex) ? ex : ex && typeof ex === 'object' ? Object.keys(ex).map(key => ({key, message: ex[key]})) : [])
        .forEach(x => {
          const k = txt(x && x.key).split(/[.[\]'"$]+/).filter(Boolean).pop(), el = k !== 'website' && this.$('f-' + k);
          if (!el) return rest.push(txt(x && x.message));
          el.setAttribute('aria-invalid', 'true');
          this.$('f-' + k + '-e').textContent = txt(x.message);
        });
      this.$('fe').textContent = [this._T().fix].concat(rest).join(' ');
      (this.$('tf').querySelector('[aria-invalid]') || this.$('send')).focus();
      this._emit('kb-error', {source: 'ticket', status, message: txt(j && j.detail)});
    }

    _hideForm() {
      this.$('tf').hidden = true;
      this._formBy = '';
    }

    _created(t) {
      const id = txt(t && t.id), dn = this.$('dn');
      this._hideForm();
      this.$('f-subject').value = this.$('f-body').value = '';
      dn.textContent = this._T().done.replace('{id}', id);
      dn.hidden = false;
      dn.focus();
      this._contact();
      // The server wrote the `ticket_created` funnel event in the ticket's own transaction.
      this._emit('kb-ticket-created', t);
      try {
        if (typeof this.onTicketCreated === 'function') this.onTicketCreated(t);
      } catch (e) {
        this._emit('kb-error', {source: 'onTicketCreated', status: 0, message: txt(e && e.message)});
      }
    }

    _post(path, body, keepalive) {
      try {
        return fetch(this.apiOrigin + path, {method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify(body), keepalive: !!keepalive});
      } catch (e) { return Promise.reject(e); }
    }

    // Funnel events are fire-and-forget; keepalive outlives page navigation.
    _track(type, data) {
      this._sid().then(session => this._post('/api/v1/events', {session, type, data}, true)).catch(noop);
    }

    // The session is a token the server signs (POST /api/v1/session), so no one can name another
    // visitor's session. Fetched at the first interaction and kept in sessionStorage; once per page
    // the server confirms it, or hands back a new one when it no longer accepts it. Requests wait
    // for it; if the server cannot be reached they go without one, and the next asks again.
    _sid() {
      if (SID) return SID;
      let kept = '';
      try { kept = sessionStorage.getItem(KEY) || ''; } catch (e) { /* storage blocked: memory only */ }
      SID = this._post('/api/v1/session', {session: kept})
        .then(r => r.ok ? r.json() : Promise.reject(r))
        .then(d => {
          const token = txt(d && d.session);
          try { sessionStorage.setItem(KEY, token); } catch (e) { /* memory only */ }
          // Sent before the requests waiting for the token: the funnel starts with it.
          if (d && d.new) this._post('/api/v1/events', {session: token, type: 'session_start', data: {}}, true).catch(noop);
          return token;
        })
        .catch(() => { SID = null; return ''; });
      return SID;
    }
  }

  // Attributes mirrored as properties; getters parse and apply defaults.
  const PROPS = {
    locale(v) { return v || this._lang(); },
    apiOrigin: v => txt(v || ORIGIN).replace(/\/+$/, ''),
    placeholder: 0,
    categories: 0,
    mode: v => v === 'launcher' ? v : 'inline',
    limit: v => Math.min(3, Math.max(1, parseInt(v, 10) || 3)),
    feedbackDelay: v => v != null && v !== '' && +v >= 0 ? +v : 4000,
    // The page's attribute wins over the server's KB_CONTACT_MODE; contact-only-after-query is the older name.
    contactMode(v) {
      const old = this.getAttribute('contact-only-after-query');
      return MODES.indexOf(v) >= 0 ? v : old != null ? MODES[old === 'false' ? 1 : 0] : this._cfg().contact_mode;
    },
    contactOnlyAfterQuery() { return this.contactMode === MODES[0]; }
  };
  Object.keys(PROPS).forEach(p => {
    const a = kebab(p), f = PROPS[p];
    Object.defineProperty(KbWidget.prototype, p, {
      configurable: true,
      get() { const v = this.getAttribute(a); return f ? f.call(this, v) : v; },
      set(v) { if (v == null) this.removeAttribute(a); else this.setAttribute(a, v); }
    });
  });

  try { W.customElements.define('kb-widget', KbWidget); } catch (e) { return; }

  // Loaded by a plain <script> tag: add one floating launcher unless the page places its own.
  function launch() {
    try {
      const ds = ME.dataset;
      if (ds.mode === 'inline' || D.querySelector('kb-widget')) return;
      const el = D.createElement('kb-widget');
      for (const k in ds) if (k !== 'nonce') el.setAttribute(kebab(k), ds[k]);
      el.setAttribute('mode', 'launcher');
      D.body.append(el);
    } catch (e) { /* never break the host page */ }
  }
  if (ME && ME.src) {
    if (D.readyState === 'loading') D.addEventListener('DOMContentLoaded', launch); else launch();
  }
})();

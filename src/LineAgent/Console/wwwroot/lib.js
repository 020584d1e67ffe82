// Shared by every page of the console: the JSON API with the session cookie and the anti-forgery
// header, the live event stream, the availability icon, and small formatting helpers.

const csrf = document.querySelector('meta[name="lineagent-csrf"]')?.content ?? '';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
    this.code = this.problem.code;
  }

  /** Each bad field's sentence, or the detail. */
  get sentences() {
    const problems = this.problem.problems;
    return Array.isArray(problems) && problems.length ? problems.map((p) => p.detail) : [this.message];
  }
}

/** Calls the agent's API; changes carry the session's anti-forgery header. Returns the parsed JSON (or null). */
export async function api(path, { method = 'GET', body, headers = {}, idempotent = false, timeoutMs } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  // Reads may give up after a while (a request that never settles would leave "Loading…" forever); changes never do,
  // as an abandoned change may still have been made. (AbortController and a timer: AbortSignal.timeout is newer.)
  let timer = null;
  if (timeoutMs && method === 'GET') {
    const controller = new AbortController();
    timer = setTimeout(() => controller.abort(), timeoutMs);
    init.signal = controller.signal;
  }
  if (method !== 'GET' && method !== 'HEAD') init.headers['X-LineAgent-CSRF'] = csrf;
  if (idempotent) init.headers['Idempotency-Key'] = crypto.randomUUID();
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  let text;
  try {
    response = await fetch(path, init);
    text = await response.text();
  } catch {
    if (init.signal?.aborted) throw new ApiError(0, { code: 'timeout', detail: 'The agent did not answer in time.' });
    // The answer to a change began (not a refusal), so it may have been made: a retry (with a new Idempotency-Key) could
    // make it twice.
    if (response && (response.ok || response.status >= 500) && method !== 'GET' && method !== 'HEAD')
      throw new ApiError(0, { code: 'answer_cut_off', detail: 'The answer was cut off; the change may have been made. Reload the page before trying again.' });
    throw new ApiError(0, { detail: 'The agent does not answer. Is it running? (lineagent status)' });
  } finally {
    clearTimeout(timer);
  }
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (response.status === 401) {
    notice('Your console session has ended (the agent restarted, or it expired). Run “lineagent open” in Terminal to sign in again.');
    throw new ApiError(401, json);
  }
  // A failed send (500 delivery_failed) still names the message it stored.
  if (!response.ok && !(response.status === 500 && json?.message?.id)) throw new ApiError(response.status, json);
  return json;
}

/** A message at the top of the page (role=alert), e.g. a lost session. */
export function notice(text) {
  const el = document.getElementById('notice');
  if (!el) return;
  el.textContent = text;
  el.hidden = false;
}

// ---- live updates: one EventSource per page -----------------------------------------------------

const listeners = new Set();
const reconnectListeners = new Set();
let source = null;
let connectedOnce = false;

function setLive(state, text) {
  const el = document.getElementById('live');
  if (!el) return;
  el.dataset.state = state;
  el.textContent = text;
}

/** Calls handler(event) for every committed message change: { transition, message }. */
export function onMessageChange(handler) {
  listeners.add(handler);
  connect();
  return () => listeners.delete(handler);
}

/** Calls handler after the stream came back from an interruption (changes in between were missed: reload). */
export function onReconnect(handler) {
  reconnectListeners.add(handler);
  connect();
}

function connect() {
  if (source) return;
  source = new EventSource('/api/events/stream');
  source.addEventListener('ready', () => {
    setLive('live', 'Live');
    if (connectedOnce) reconnectListeners.forEach((h) => h());
    connectedOnce = true;
  });
  source.addEventListener('message', (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch { return; }
    listeners.forEach((h) => h(data));
  });
  source.addEventListener('error', () => {
    // The agent ends a stream when its session ends; the reconnection is then refused (401) and the browser gives up.
    if (source.readyState === EventSource.CLOSED) {
      setLive('offline', 'Signed out');
      notice('Your console session has ended (signed out, the agent restarted, or it expired). Run “lineagent open” in Terminal to sign in again.');
    } else setLive('offline', 'Reconnecting…');
  });
}

// ---- availability icon --------------------------------------------------------------------------

const availabilityLooks = {
  imessage: { name: 'iMessage available', short: 'iMessage', cls: 'blue' },
  sms: { name: 'Will send as SMS', short: 'SMS', cls: 'gray' },
  email: { name: 'Will send as email', short: 'Email', cls: 'mail' },
  unknown: { name: 'Availability unknown', short: 'Unknown', cls: 'hollow' },
};

const sourceWords = {
  history: 'from this agent’s own deliveries',
  'messages-db': 'from the Messages history on this Mac (chat.db)',
  probe: 'from the availability probe',
  none: 'nothing is known about this address yet',
};

/** What GET /api/availability said, as the icon's look: imessage, sms, email or unknown. */
export function availabilityKind(result) {
  if (!result) return 'unknown';
  if (result.imessage === 'available') return 'imessage';
  if (result.sendAs === 'email') return 'email';
  if (result.sendAs === 'sms') return 'sms';
  return 'unknown';
}

/** Sets a role=img element to one of the four looks; its title says where the answer came from. */
export function showAvailability(el, kind, title) {
  const look = availabilityLooks[kind] ?? availabilityLooks.unknown;
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', look.name);
  el.dataset.kind = kind;
  el.className = `availability ${look.cls}`;
  el.title = title ?? look.name;
  el.replaceChildren(Object.assign(document.createElement('span'), { className: 'dot' }),
    Object.assign(document.createElement('span'), { className: 'word', textContent: look.short, ariaHidden: 'true' }));
}

export function availabilityTitle(result) {
  const kind = availabilityKind(result);
  const look = availabilityLooks[kind];
  const from = sourceWords[result?.source] ?? result?.source ?? '';
  const checked = result?.checkedAt ? `, checked ${formatTime(result.checkedAt)}` : '';
  return `${look.name}: ${from}${checked}`;
}

// ---- formatting ---------------------------------------------------------------------------------

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

export function formatTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeOnly.format(d) : dateTime.format(d);
}

export const userTimeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** A datetime-local value (no offset) for the API: with the browser's time zone, so the agent reads it as the user meant. */
export function scheduleFields(localValue) {
  return localValue ? { scheduledAt: `${localValue.length === 16 ? `${localValue}:00` : localValue}`, timeZone: userTimeZone } : {};
}

/** ISO time → the value a datetime-local input shows, in the user's zone. */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export const typeWords = { imessage: 'iMessage', sms: 'SMS', email: 'Email', auto: 'Auto' };

export function recipientOf(m) {
  return m.recipientName ? `${m.recipientName} (${m.recipientPhone ?? m.recipientEmail ?? ''})` : (m.recipientPhone ?? m.recipientEmail ?? '');
}

export function deliveryWords(m) {
  if (m.delivery === 'read') return '✓✓ read';
  if (m.delivery === 'delivered') return '✓ delivered';
  if (m.delivery === 'not_delivered') return 'not delivered';
  return '';
}

/** Element helper: el('td', { className: 'x' }, child, 'text'). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('aria') || k === 'role' || k === 'for' || k === 'colspan') node.setAttribute(k === 'for' ? 'for' : k.replace(/^aria([A-Z])/, (_, c) => `aria-${c.toLowerCase()}`), v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Lines of this agent (cached per page). */
let linesPromise;
export function lines() {
  linesPromise ??= api('/api/lines').catch(() => []);
  return linesPromise;
}

/** Fills a Line picker and shows it only when the agent has several lines. */
export async function fillLinePicker(select, wrapper, { any = false } = {}) {
  const all = await lines();
  select.replaceChildren(...(any ? [el('option', { value: '' }, 'Any')] : []),
    ...all.map((l) => el('option', { value: l.id }, `${l.name || l.id}${l.active ? '' : ' (paused)'}`)));
  if (!any) {
    const firstActive = all.find((l) => l.active);
    if (firstActive) select.value = firstActive.id;
  }
  wrapper.hidden = all.length < 2;
}

// ---- every page ---------------------------------------------------------------------------------

connect();

document.getElementById('sign-out')?.addEventListener('click', async () => {
  try { await api('/api/console/logout', { method: 'POST' }); } catch { /* signed out either way */ }
  location.assign('/');
});

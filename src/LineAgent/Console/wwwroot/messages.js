import {
  api, ApiError, debounce, deliveryWords, el, fillLinePicker, formatTime, onMessageChange, onReconnect,
  scheduleFields, toLocalInput, typeWords,
} from './lib.js';

const form = document.getElementById('filters');
const tbody = document.querySelector('#messages tbody');
const summary = document.getElementById('summary');
const more = document.getElementById('more');
const listError = document.getElementById('list-error');
const exportLink = document.getElementById('export');
const newBanner = document.getElementById('new-messages');

const rows = new Map(); // id -> { message, tr, detail }
// The newest state seen of each message (stream and actions): a list fetched before a change must not undo it.
const latest = new Map();

function remember(m) {
  const known = latest.get(m.id);
  // Older than the one shown, or the same version again (the live stream repeats what an action's own answer showed):
  // keep the one shown, so its row is not rebuilt, with its buttons, under the user's pointer.
  if (known && (Date.parse(known.updatedAt) > Date.parse(m.updatedAt) || JSON.stringify(known) === JSON.stringify(m))) return known;
  if (latest.size > 5000) latest.clear();
  latest.set(m.id, m);
  return m;
}
let cursor = null;
let loading = 0;

// ---- filters: in the address bar too, so a filtered view can be bookmarked or reloaded ----------

const names = ['status', 'type', 'lineId', 'from', 'to', 'recipient', 'q'];

// Links from a batch or a lead narrow the list to it (shown above the table, with a way out).
const scope = Object.fromEntries(['batchId', 'leadId'].map((k) => [k, new URLSearchParams(location.search).get(k)]).filter(([, v]) => v));

function readFilters() {
  const f = { ...scope };
  for (const name of names) {
    const value = form.elements[name].value.trim();
    if (!value) continue;
    f[name] = name === 'from' || name === 'to' ? new Date(value).toISOString() : value;
  }
  return f;
}

function query(extra = {}) {
  return new URLSearchParams({ ...readFilters(), ...extra }).toString();
}

async function restoreFilters() {
  await fillLinePicker(form.elements.lineId, document.getElementById('f-line-field'), { any: true });
  const params = new URLSearchParams(location.search);
  for (const name of names) {
    const value = params.get(name);
    if (value === null) continue;
    form.elements[name].value = name === 'from' || name === 'to' ? toLocalInput(value) : value;
  }
}

function syncLocation() {
  const params = new URLSearchParams(scope);
  for (const name of names) if (form.elements[name].value.trim()) params.set(name, form.elements[name].value.trim());
  history.replaceState(null, '', params.toString() ? `?${params}` : location.pathname);
  exportLink.href = `/api/messages/export?${query({ format: 'csv' })}`;
}

// ---- the table ----------------------------------------------------------------------------------

function whenOf(m) {
  if (m.status === 'scheduled') return `scheduled ${formatTime(m.scheduledAt)}`;
  if (m.sentAt) return formatTime(m.sentAt);
  if (m.status === 'queued' && m.notBefore) return `waits until ${formatTime(m.notBefore)}`;
  return formatTime(m.createdAt);
}

function recipientCell(m) {
  const address = m.recipientPhone ?? m.recipientEmail ?? '';
  return m.recipientName ? [el('span', { className: 'name' }, m.recipientName), el('br'), el('span', { className: 'muted' }, address)] : [address];
}

function actionsOf(m) {
  const buttons = [];
  if (m.status === 'scheduled' || m.status === 'queued')
    buttons.push(el('button', { type: 'button', className: 'small danger', dataset: { action: 'cancel' } }, 'Cancel'));
  if (m.status === 'scheduled') {
    buttons.push(el('button', { type: 'button', className: 'small', dataset: { action: 'edit' } }, 'Edit'));
    buttons.push(el('button', { type: 'button', className: 'small', dataset: { action: 'reschedule' } }, 'Reschedule'));
  }
  buttons.push(el('button', { type: 'button', className: 'small link', dataset: { action: 'events' }, ariaExpanded: 'false' }, 'History'));
  return buttons;
}

function renderRow(entry) {
  const m = entry.message;
  const text = m.content.length > 140 ? `${m.content.slice(0, 139)}…` : m.content;
  const cells = [
    el('td', { dataset: { label: 'When' } }, whenOf(m)),
    el('td', { dataset: { label: 'Recipient' } }, ...recipientCell(m)),
    el('td', { dataset: { label: 'Message' }, className: 'content' }, text,
      m.error ? el('span', { className: 'error small-text' }, ` — ${m.error.code}${m.error.message ? `: ${m.error.message}` : ''}`) : null),
    el('td', { dataset: { label: 'Type' } }, typeWords[m.type] ?? m.type),
    el('td', { dataset: { label: 'Status' } }, el('span', { className: `status ${m.status}`, dataset: { field: 'status' } }, m.status)),
    el('td', { dataset: { label: 'Delivery' } }, deliveryWords(m)),
    el('td', { dataset: { label: 'Actions' }, className: 'row-actions' }, ...actionsOf(m)),
  ];
  entry.tr.replaceChildren(...cells);
  entry.tr.dataset.id = m.id;
  entry.tr.dataset.status = m.status;
  if (entry.detail && !entry.detail.hidden) {
    const toggle = entry.tr.querySelector('[data-action="events"]');
    toggle.setAttribute('aria-expanded', 'true');
    toggle.setAttribute('aria-controls', entry.detail.id);
    loadEvents(entry);
  }
}

function addRows(messages, { atTop = false } = {}) {
  const fragment = document.createDocumentFragment();
  for (const fetched of messages) {
    if (rows.has(fetched.id)) continue;
    const m = remember(fetched);
    const entry = { message: m, tr: el('tr'), detail: null };
    rows.set(m.id, entry);
    renderRow(entry);
    fragment.append(entry.tr);
  }
  if (atTop) tbody.prepend(fragment); else tbody.append(fragment);
}

async function load({ append = false } = {}) {
  const mine = ++loading;
  listError.hidden = true;
  if (!append) {
    cursor = null;
    newBanner.hidden = true;
  }
  try {
    const page = await api(`/api/messages?${query({ limit: 50, ...(append && cursor ? { cursor } : {}) })}`);
    if (mine !== loading) return;
    // A reload (the stream came back, the filters were restored after the page's first answer) keeps the status
    // histories the user opened on rows that are still listed, and fetches them again.
    const opened = new Map();
    if (!append) {
      for (const [id, entry] of rows) if (entry.detail && !entry.detail.hidden) opened.set(id, entry.detail);
      rows.clear();
      tbody.replaceChildren();
    }
    addRows(page.items);
    for (const [id, detail] of opened) {
      const entry = rows.get(id);
      if (!entry) continue;
      entry.detail = detail;
      entry.tr.after(detail);
      const toggle = entry.tr.querySelector('[data-action="events"]');
      toggle?.setAttribute('aria-expanded', 'true');
      toggle?.setAttribute('aria-controls', detail.id);
      loadEvents(entry);
    }
    cursor = page.nextCursor;
    more.hidden = !cursor;
    // A search for text no index holds (an emoji) reads a span of messages per page: a page may be empty with more below.
    summary.textContent = rows.size === 0 ? (cursor ? 'None found yet among the newest messages; load more to search older ones.' : 'No messages match these filters.')
      : `${rows.size} message${rows.size === 1 ? '' : 's'}${cursor ? ' shown (more below)' : ''}.`;
  } catch (e) {
    if (mine !== loading) return;
    listError.textContent = e instanceof ApiError ? e.sentences.join(' ') : String(e);
    listError.hidden = false;
  }
}

// ---- row actions --------------------------------------------------------------------------------

async function cancel(entry, button) {
  button.disabled = true;
  try {
    entry.message = remember(await api(`/api/messages/${encodeURIComponent(entry.message.id)}/cancel`, { method: 'POST' }));
    renderRow(entry);
    entry.tr.querySelector('[data-action="events"]')?.focus();
  } catch (e) {
    button.disabled = false;
    listError.textContent = e instanceof ApiError ? e.sentences.join(' ') : String(e);
    listError.hidden = false;
  }
}

// A row's history is fetched again when the row changes while it is open; only the newest request's answer is shown,
// and a request that does not settle is tried once more before the row says so (it never stays "Loading…").
async function loadEvents(entry) {
  const mine = (entry.eventsRequest = (entry.eventsRequest ?? 0) + 1);
  const path = `/api/messages/${encodeURIComponent(entry.message.id)}/events`;
  let events;
  let failure = null;
  for (let attempt = 1; attempt <= 2; attempt++) {
    try {
      events = await api(path, { timeoutMs: 8000 });
      failure = null;
      break;
    } catch (e) {
      failure = e;
      if (!(e instanceof ApiError && e.code === 'timeout')) break;
    }
  }
  if (mine !== entry.eventsRequest || !entry.detail) return;
  const cell = entry.detail.querySelector('td');
  if (failure) {
    const retry = el('button', { type: 'button', className: 'small' }, 'Try again');
    retry.addEventListener('click', () => loadEvents(entry));
    cell.replaceChildren(el('p', { className: 'error' }, 'The status history could not be loaded: ',
      failure instanceof ApiError ? failure.sentences.join(' ') : String(failure), ' '), retry);
    return;
  }
  const list = el('ol', { className: 'events' }, ...(Array.isArray(events) ? events : []).map((e) => el('li', {},
    el('time', { dateTime: e.at }, formatTime(e.at)), ' ', el('strong', {}, e.status),
    e.code ? ` (${e.code})` : '', e.detail ? ` — ${e.detail}` : '')));
  cell.replaceChildren(el('h3', { className: 'visually-hidden' }, 'Status history'), list);
}

async function toggleEvents(entry, button) {
  if (!entry.detail) {
    entry.detail = el('tr', { className: 'detail', id: `events-${entry.message.id}` }, el('td', { colspan: '7' }, 'Loading…'));
    entry.detail.hidden = true;
    entry.tr.after(entry.detail);
  }
  const open = entry.detail.hidden;
  entry.detail.hidden = !open;
  button.setAttribute('aria-expanded', String(open));
  button.setAttribute('aria-controls', entry.detail.id);
  if (open) await loadEvents(entry);
}

let editing = null;
let returnFocus = null;

function openDialog(dialog, entry, opener) {
  editing = entry;
  returnFocus = opener;
  dialog.querySelector('.error').hidden = true;
  dialog.showModal();
}

for (const dialog of document.querySelectorAll('dialog')) {
  dialog.querySelector('[data-close]').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => returnFocus?.focus());
}

async function patch(dialog, body) {
  const error = dialog.querySelector('.error');
  try {
    editing.message = remember(await api(`/api/messages/${encodeURIComponent(editing.message.id)}`, { method: 'PATCH', body }));
    renderRow(editing);
    returnFocus = editing.tr.querySelector(`[data-action="${dialog.id === 'edit-dialog' ? 'edit' : 'reschedule'}"]`) ?? returnFocus;
    dialog.close();
  } catch (e) {
    error.textContent = e instanceof ApiError ? e.sentences.join(' ') : String(e);
    error.hidden = false;
  }
}

const editDialog = document.getElementById('edit-dialog');
document.getElementById('edit-form').addEventListener('submit', (e) => {
  e.preventDefault();
  patch(editDialog, { content: document.getElementById('edit-content').value });
});
const rescheduleDialog = document.getElementById('reschedule-dialog');
document.getElementById('reschedule-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const at = document.getElementById('reschedule-at').value;
  if (!at) return;
  patch(rescheduleDialog, scheduleFields(at));
});

tbody.addEventListener('click', (e) => {
  const button = e.target.closest('button[data-action]');
  if (!button) return;
  const entry = rows.get(button.closest('tr').dataset.id);
  if (!entry) return;
  switch (button.dataset.action) {
    case 'cancel': cancel(entry, button); break;
    case 'events': toggleEvents(entry, button); break;
    case 'edit':
      document.getElementById('edit-content').value = entry.message.content;
      openDialog(editDialog, entry, button);
      break;
    case 'reschedule':
      document.getElementById('reschedule-at').value = toLocalInput(entry.message.scheduledAt);
      openDialog(rescheduleDialog, entry, button);
      break;
    default: break;
  }
});

// ---- live ---------------------------------------------------------------------------------------

onMessageChange(({ message: changed }) => {
  const message = remember(changed);
  const entry = rows.get(message.id);
  if (entry) {
    if (entry.message === message) return;
    entry.message = message;
    renderRow(entry);
  } else if (message.direction === 'outbound') {
    newBanner.hidden = false;
  }
});
onReconnect(() => load());
newBanner.addEventListener('click', () => load());

// ---- filters ------------------------------------------------------------------------------------

const apply = () => { syncLocation(); load(); };
form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
form.addEventListener('reset', () => setTimeout(apply));
form.addEventListener('change', (e) => { if (e.target.tagName === 'SELECT' || e.target.type === 'datetime-local') apply(); });
const typed = debounce(apply, 400);
form.addEventListener('input', (e) => { if (e.target.type === 'text' || e.target.type === 'search') typed(); });
more.addEventListener('click', () => load({ append: true }));

if (Object.keys(scope).length) {
  const words = Object.entries(scope).map(([k, v]) => `${k === 'batchId' ? 'batch' : 'lead'} ${v}`).join(', ');
  summary.before(el('p', { className: 'scope' }, `Only messages of ${words}. `, el('a', { href: '/messages' }, 'Show all messages')));
}
await restoreFilters();
syncLocation();
load();

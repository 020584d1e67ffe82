import { api, ApiError, debounce, el, fillLinePicker, scheduleFields } from './lib.js';

const PAGE = 25;
const tbody = document.querySelector('#leads tbody');
const filters = document.getElementById('lead-filters');
const selectPage = document.getElementById('select-page');
const compose = document.getElementById('compose');
const selectedCount = document.getElementById('selected-count');
const clearSelection = document.getElementById('clear-selection');
const listError = document.getElementById('list-error');
const prev = document.getElementById('prev');
const next = document.getElementById('next');
const pageLabel = document.getElementById('page-label');

const selected = new Map(); // id -> lead, across pages and searches
let pageLeads = [];
const cursors = [null]; // cursor of each page seen
let pageIndex = 0;
let nextCursor = null;
let loading = 0;
const knownTags = new Set();
const knownFields = new Set();

function nameOf(lead) {
  return [lead.firstName, lead.lastName].filter(Boolean).join(' ') || lead.email || lead.phone || lead.id;
}

// ---- the table ----------------------------------------------------------------------------------

async function load() {
  const mine = ++loading;
  listError.hidden = true;
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (filters.elements.q.value.trim()) params.set('q', filters.elements.q.value.trim());
  if (filters.elements.tag.value.trim()) params.set('tag', filters.elements.tag.value.trim());
  if (cursors[pageIndex]) params.set('cursor', cursors[pageIndex]);
  try {
    const page = await api(`/api/leads?${params}`);
    if (mine !== loading) return;
    pageLeads = page.items;
    nextCursor = page.nextCursor;
    render();
  } catch (e) {
    if (mine !== loading) return;
    listError.textContent = e instanceof ApiError ? e.sentences.join(' ') : String(e);
    listError.hidden = false;
  }
}

function render() {
  for (const lead of pageLeads) {
    lead.tags.forEach((t) => knownTags.add(t));
    Object.keys(lead.fields ?? {}).forEach((f) => knownFields.add(f));
  }
  document.getElementById('tags').replaceChildren(...[...knownTags].sort().map((t) => el('option', { value: t })));
  tbody.replaceChildren(...(pageLeads.length ? pageLeads.map((lead) => el('tr', { dataset: { id: lead.id } },
    el('td', { className: 'check' }, el('input', {
      type: 'checkbox', checked: selected.has(lead.id), ariaLabel: nameOf(lead), dataset: { id: lead.id },
    })),
    el('td', { dataset: { label: 'Name' } }, nameOf(lead)),
    el('td', { dataset: { label: 'Phone' } }, lead.phone ?? ''),
    el('td', { dataset: { label: 'Email' } }, lead.email ?? ''),
    el('td', { dataset: { label: 'Company' } }, lead.company ?? ''),
    el('td', { dataset: { label: 'Tags' } }, ...lead.tags.map((t) => el('span', { className: 'tag' }, t))),
  )) : [el('tr', {}, el('td', { colspan: '6', className: 'empty' }, 'No leads match. Import a CSV file below, or change the search.'))]));
  prev.disabled = pageIndex === 0;
  next.disabled = !nextCursor;
  pageLabel.textContent = `Page ${pageIndex + 1}`;
  updateSelection();
}

function updateSelection() {
  const n = selected.size;
  selectedCount.textContent = n === 0 ? 'No leads selected' : `${n} lead${n === 1 ? '' : 's'} selected`;
  compose.disabled = n === 0;
  clearSelection.hidden = n === 0;
  const onPage = pageLeads.filter((l) => selected.has(l.id)).length;
  selectPage.checked = pageLeads.length > 0 && onPage === pageLeads.length;
  selectPage.indeterminate = onPage > 0 && onPage < pageLeads.length;
}

tbody.addEventListener('change', (e) => {
  const box = e.target.closest('input[type="checkbox"][data-id]');
  if (!box) return;
  const lead = pageLeads.find((l) => l.id === box.dataset.id);
  if (box.checked && lead) selected.set(lead.id, lead); else selected.delete(box.dataset.id);
  updateSelection();
});
selectPage.addEventListener('change', () => {
  for (const lead of pageLeads) if (selectPage.checked) selected.set(lead.id, lead); else selected.delete(lead.id);
  render();
});
clearSelection.addEventListener('click', () => { selected.clear(); render(); });

const restart = () => { cursors.length = 1; pageIndex = 0; load(); };
filters.addEventListener('input', debounce(restart, 400));
filters.addEventListener('submit', (e) => { e.preventDefault(); restart(); });
prev.addEventListener('click', () => { if (pageIndex > 0) { pageIndex -= 1; load(); } });
next.addEventListener('click', () => {
  if (!nextCursor) return;
  cursors[pageIndex + 1] = nextCursor;
  pageIndex += 1;
  load();
});

// ---- import -------------------------------------------------------------------------------------

document.getElementById('import-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const out = document.getElementById('import-result');
  const file = form.elements.file.files[0];
  if (!file) { out.textContent = 'Choose a CSV file first.'; return; }
  const data = new FormData();
  data.append('file', file);
  const tags = form.elements.tags.value.trim();
  out.textContent = 'Importing…';
  try {
    const r = await api(`/api/leads/import${tags ? `?tags=${encodeURIComponent(tags)}` : ''}`, { method: 'POST', body: data });
    out.replaceChildren(
      el('p', {}, `${r.rows} rows read: ${r.created} created, ${r.updated} updated, ${r.skipped} skipped.`),
      r.skippedRows.length ? el('ul', { className: 'reasons' }, ...r.skippedRows.map((s) => el('li', {}, `Row ${s.row}: ${s.reason}`))) : '',
      r.skippedRowsTruncated ? el('p', { className: 'hint' }, 'Only the first skipped rows are listed.') : '');
    restart();
  } catch (err) {
    out.textContent = err instanceof ApiError ? err.sentences.join(' ') : String(err);
  }
});

// ---- composer -----------------------------------------------------------------------------------

const composer = document.getElementById('composer');
const content = document.getElementById('bulk-content');
const preview = document.getElementById('preview');
const previewNote = document.getElementById('preview-note');
const composerError = document.getElementById('composer-error');
const insertField = document.getElementById('insert-field');
const bulkCount = document.getElementById('bulk-count');

fillLinePicker(document.getElementById('bulk-line'), document.getElementById('bulk-line-field'));

compose.addEventListener('click', () => {
  const n = selected.size;
  document.getElementById('composer-heading').textContent = `Send message to ${n} lead${n === 1 ? '' : 's'}`;
  document.getElementById('composer-to').textContent = [...selected.values()].slice(0, 5).map(nameOf).join(', ') + (n > 5 ? ` and ${n - 5} more` : '');
  // A name with | or braces (stored before the API refused them) or spaces at its ends cannot be written as a placeholder:
  // {{fields.a|b}} reads as field a with the fallback b. Such fields are not offered.
  const usable = [...knownFields].filter((f) => f !== '' && !/[|{}]/.test(f) && f.trim() === f);
  const fields = ['firstName', 'lastName', 'fullName', 'company', 'phone', 'email', ...usable.sort().map((f) => `fields.${f}`)];
  insertField.replaceChildren(...fields.map((f) => el('option', { value: f }, f)));
  composerError.hidden = true;
  composer.showModal();
  content.focus();
  renderPreview();
});
document.getElementById('composer-close').addEventListener('click', () => composer.close());
composer.addEventListener('close', () => compose.focus());

document.getElementById('insert').addEventListener('click', () => {
  const fallback = document.getElementById('insert-fallback').value;
  if (/[{}]/.test(fallback)) {
    composerError.textContent = 'A fallback cannot hold { or }: it would end the placeholder early.';
    composerError.hidden = false;
    return;
  }
  composerError.hidden = true;
  const token = `{{${insertField.value}${fallback ? `|${fallback}` : ''}}}`;
  const start = content.selectionStart ?? content.value.length;
  const end = content.selectionEnd ?? start;
  content.setRangeText(token, start, end, 'end');
  content.focus();
  content.dispatchEvent(new Event('input'));
});

let previewAsked = 0;
async function renderPreview() {
  const mine = ++previewAsked;
  const n = new Intl.NumberFormat().format(content.value.length);
  bulkCount.textContent = `${n} / 10,000 characters`;
  const first = [...selected.keys()].slice(0, 3);
  if (!content.value.trim() || first.length === 0) {
    preview.replaceChildren();
    previewNote.textContent = 'Write the message to see how it reads for the first three leads.';
    return;
  }
  try {
    const r = await api('/api/console/preview', { method: 'POST', body: { content: content.value, leadIds: first } });
    if (mine !== previewAsked) return;
    preview.replaceChildren(...r.items.map((item) => el('li', {},
      el('span', { className: 'preview-to' }, item.name ?? item.recipient ?? item.leadId),
      item.content !== null
        ? el('p', { className: 'bubble' }, item.content)
        : el('p', { className: 'error' }, item.missingField
          ? `No ${item.missingField} for this lead: it will be skipped. Add a fallback, e.g. {{${item.missingField}|there}}.`
          : 'This lead no longer exists.'))));
    const notes = [];
    if (selected.size > 3) notes.push(`Showing the first 3 of ${selected.size} messages.`);
    if (r.unknownFields.length) notes.push(`Unknown field${r.unknownFields.length > 1 ? 's' : ''}: ${r.unknownFields.join(', ')} (leads without it are skipped).`);
    previewNote.textContent = notes.join(' ');
  } catch (e) {
    if (mine !== previewAsked) return;
    previewNote.textContent = e instanceof ApiError ? e.sentences.join(' ') : String(e);
  }
}
content.addEventListener('input', debounce(renderPreview, 300));

document.getElementById('composer-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  composerError.hidden = true;
  if (!content.value.trim()) {
    composerError.textContent = 'Message: write something to send.';
    composerError.hidden = false;
    content.focus();
    return;
  }
  const send = document.getElementById('bulk-send');
  send.disabled = true;
  try {
    const r = await api('/api/messages/bulk', {
      method: 'POST',
      idempotent: true,
      body: {
        leadIds: [...selected.keys()],
        content: content.value,
        type: document.getElementById('bulk-type').value,
        lineId: document.getElementById('bulk-line').value || undefined,
        ...scheduleFields(document.getElementById('bulk-at').value),
      },
    });
    location.assign(`/batches/${encodeURIComponent(r.batchId)}`);
  } catch (err) {
    send.disabled = false;
    composerError.textContent = err instanceof ApiError ? err.sentences.join(' ') : String(err);
    composerError.hidden = false;
  }
});

load();

import { api, ApiError, deliveryWords, el, onMessageChange, onReconnect, typeWords } from './lib.js';

const batchId = decodeURIComponent(location.pathname.split('/').pop());
const messages = new Map();
let rejected = 0;
const tbody = document.querySelector('#batch-messages tbody');
const error = document.getElementById('batch-error');

document.getElementById('batch-heading').textContent = `Batch ${batchId}`;
document.title = `Batch ${batchId} · LineAgent`;
document.getElementById('batch-messages-link').href = `/messages?batchId=${encodeURIComponent(batchId)}`;

function facts(target, counts, words = {}) {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  target.replaceChildren(...(entries.length ? entries.map(([k, n]) => el('div', {},
    el('dt', {}, words[k] ?? k), el('dd', { dataset: { count: k } }, String(n)))) : [el('div', {}, el('dt', {}, 'None'), el('dd', {}, '0'))]));
}

function renderCounts() {
  const outbound = [...messages.values()].filter((m) => m.direction === 'outbound');
  const byStatus = {};
  const byType = {};
  for (const m of outbound) {
    byStatus[m.status] = (byStatus[m.status] ?? 0) + 1;
    byType[m.type] = (byType[m.type] ?? 0) + 1;
  }
  if (rejected) byStatus.rejected = rejected;
  document.querySelector('[data-count="total"]').textContent = String(outbound.length + rejected);
  document.querySelector('[data-count="rejected"]').textContent = String(rejected);
  facts(document.getElementById('by-status'), byStatus);
  facts(document.getElementById('by-type'), byType, typeWords);
  document.getElementById('cancel-batch').disabled = !outbound.some((m) => m.status === 'scheduled' || m.status === 'queued');
}

function row(m) {
  return el('tr', { dataset: { id: m.id, status: m.status } },
    el('td', { dataset: { label: 'Recipient' } }, m.recipientName ? `${m.recipientName} (${m.recipientPhone ?? m.recipientEmail})` : (m.recipientPhone ?? m.recipientEmail ?? '')),
    el('td', { dataset: { label: 'Message' }, className: 'content' }, m.content,
      m.error ? el('span', { className: 'error small-text' }, ` — ${m.error.code}: ${m.error.message ?? ''}`) : null),
    el('td', { dataset: { label: 'Type' } }, typeWords[m.type] ?? m.type),
    el('td', { dataset: { label: 'Status' } }, el('span', { className: `status ${m.status}` }, m.status)),
    el('td', { dataset: { label: 'Delivery' } }, deliveryWords(m)));
}

function renderRows() {
  tbody.replaceChildren(...[...messages.values()].filter((m) => m.direction === 'outbound').map(row));
}

async function load() {
  try {
    const b = await api(`/api/batches/${encodeURIComponent(batchId)}`);
    const seen = new Map(messages);
    messages.clear();
    // A change that arrived on the stream while this was loading is newer than what the load read.
    b.messages.forEach((m) => {
      const known = seen.get(m.id);
      messages.set(m.id, known && Date.parse(known.updatedAt) > Date.parse(m.updatedAt) ? known : m);
    });
    rejected = b.rejected;
    const list = document.getElementById('rejection-list');
    list.replaceChildren(...b.rejections.map((r) => el('li', {}, `Lead ${r.leadId}: ${r.code} — ${r.message}`)));
    document.getElementById('rejections').hidden = b.rejections.length === 0;
    renderRows();
    renderCounts();
    error.hidden = true; // a load that failed before (the batch could not be read then) said so
  } catch (e) {
    error.textContent = e instanceof ApiError ? e.sentences.join(' ') : String(e);
    error.hidden = false;
    // No batch of that id (or it could not be read now): nothing to cancel from here (probe: the button stayed enabled and
    // 404'd); the counts stay unknown ("…") rather than 0 for a batch that may exist.
    document.getElementById('cancel-batch').disabled = true;
  }
}

onMessageChange(({ message }) => {
  if (message.batchId !== batchId) return;
  const known = messages.get(message.id);
  if (known && Date.parse(message.updatedAt) < Date.parse(known.updatedAt)) return;
  messages.set(message.id, message);
  renderRows();
  renderCounts();
});
onReconnect(load);

const confirmDialog = document.getElementById('confirm-cancel');
document.getElementById('cancel-batch').addEventListener('click', () => confirmDialog.showModal());
confirmDialog.addEventListener('close', async () => {
  const button = document.getElementById('cancel-batch');
  button.focus();
  if (confirmDialog.returnValue !== 'yes') return;
  try {
    const r = await api(`/api/batches/${encodeURIComponent(batchId)}/cancel`, { method: 'POST' });
    document.getElementById('cancel-result').textContent = `${r.cancelled} message${r.cancelled === 1 ? '' : 's'} cancelled.`;
    await load();
  } catch (e) {
    document.getElementById('cancel-result').textContent = e instanceof ApiError ? e.sentences.join(' ') : String(e);
  }
});

load();

import {
  api, ApiError, availabilityKind, availabilityTitle, debounce, deliveryWords, fillLinePicker, formatTime,
  onMessageChange, onReconnect, recipientOf, scheduleFields, showAvailability, typeWords, userTimeZone,
} from './lib.js';

const form = document.getElementById('send-form');
const recipient = document.getElementById('recipient');
const icon = document.getElementById('availability');
const content = document.getElementById('content');
const count = document.getElementById('content-count');
const type = document.getElementById('type');
const line = document.getElementById('line');
const sendAt = document.getElementById('send-at');
const subjectField = document.getElementById('subject-field');
const subject = document.getElementById('subject');
const formError = document.getElementById('form-error');
const result = document.getElementById('result');
const buttons = [document.getElementById('send-now'), document.getElementById('send-later')];

document.getElementById('zone').textContent = userTimeZone;
fillLinePicker(line, document.getElementById('line-field'));
showAvailability(icon, 'unknown', 'Availability unknown: type a phone number or an email address');

// ---- the icon: asks ~400 ms after typing stops; a late answer for older text is dropped ---------

let asked = 0;
let lastAddress = null; // the address the icon is about, as the agent normalised it
const checkAvailability = debounce(async () => {
  const address = recipient.value.trim();
  const mine = ++asked;
  lastAddress = null;
  if (!address) {
    showAvailability(icon, 'unknown', 'Availability unknown: type a phone number or an email address');
    return;
  }
  try {
    const answer = await api(`/api/availability?address=${encodeURIComponent(address)}`);
    if (mine !== asked) return;
    lastAddress = answer.address;
    showAvailability(icon, availabilityKind(answer), availabilityTitle(answer));
  } catch (e) {
    if (mine !== asked) return;
    showAvailability(icon, 'unknown', e instanceof ApiError && e.status === 400
      ? `Availability unknown: ${e.sentences.join(' ')}` : 'Availability unknown: the agent did not answer');
  }
}, 400);

recipient.addEventListener('input', () => {
  subjectField.hidden = !recipient.value.includes('@');
  checkAvailability();
});

const formatCount = new Intl.NumberFormat();
function updateCount() {
  const n = content.value.length;
  count.textContent = `${formatCount.format(n)} / 10,000 characters`;
}
content.addEventListener('input', updateCount);
updateCount();

// ---- sending ------------------------------------------------------------------------------------

let shown = null; // the message in the result box

function fail(sentences) {
  formError.replaceChildren(...sentences.map((s) => Object.assign(document.createElement('p'), { textContent: s })));
  formError.hidden = false;
}

async function send(later) {
  formError.hidden = true;
  const to = recipient.value.trim();
  const problems = [];
  if (!to) problems.push('Recipient: type a phone number or an email address.');
  if (!content.value.trim()) problems.push('Message: write something to send.');
  if (later && !sendAt.value) problems.push('Send at: pick the date and time to send it.');
  if (problems.length) {
    fail(problems);
    (!to ? recipient : !content.value.trim() ? content : sendAt).focus();
    return;
  }
  const body = {
    content: content.value,
    type: type.value,
    lineId: line.value || undefined,
    ...(to.includes('@') ? { recipientEmail: to } : { recipientPhone: to }),
    subject: subject.value || undefined,
    ...(later ? scheduleFields(sendAt.value) : {}),
  };
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const answer = await api('/api/messages', { method: 'POST', body, idempotent: true });
    const message = answer.message ?? answer; // 500 delivery_failed carries the failed record
    show(message);
    // Changes that came while the request was waiting are in the stored row.
    refresh(message.id);
    if (!later) content.value = '';
    updateCount();
  } catch (e) {
    fail(e instanceof ApiError ? e.sentences : [String(e)]);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  send(false);
});
document.getElementById('send-later').addEventListener('click', () => send(true));

function field(name) {
  return result.querySelector(`[data-field="${name}"]`);
}

function show(m) {
  if (shown && shown.id === m.id && Date.parse(shown.updatedAt) > Date.parse(m.updatedAt)) return; // an older state
  shown = m;
  result.hidden = false;
  field('status').textContent = m.status;
  field('status').dataset.status = m.status;
  field('delivery').textContent = deliveryWords(m) || (m.status === 'sent' ? 'waiting for a receipt' : '—');
  field('type').textContent = typeWords[m.type] ?? m.type;
  field('to').textContent = recipientOf(m);
  field('when').textContent = m.status === 'scheduled' ? `scheduled for ${formatTime(m.scheduledAt)}`
    : m.sentAt ? `sent ${formatTime(m.sentAt)}` : m.notBefore ? `waiting until ${formatTime(m.notBefore)}` : formatTime(m.createdAt);
  field('id').textContent = m.id;
  const error = field('error');
  error.hidden = !m.error;
  error.textContent = m.error ? `${m.error.code}: ${m.error.message ?? ''}` : '';
  document.getElementById('result-link').href = `/messages?recipient=${encodeURIComponent(m.recipientPhone ?? m.recipientEmail ?? '')}`;
}

async function refresh(id) {
  try {
    show(await api(`/api/messages/${encodeURIComponent(id)}`));
  } catch { /* the stream keeps it current */ }
}

// Outcomes teach the agent about an address (delivered: blue; error 22: gray): ask again for the one shown.
const outcomes = ['delivered', 'read', 'fail', 'not-delivered', 'receive'];

onMessageChange(({ transition, message }) => {
  if (lastAddress && outcomes.includes(transition) && (message.recipientPhone === lastAddress || message.recipientEmail === lastAddress))
    checkAvailability();
  if (!shown) return;
  // A fallback SMS replaces the iMessage it came from in the box.
  if (message.id === shown.id || (message.fallbackFrom && message.fallbackFrom === shown.id)) show(message);
});
onReconnect(() => { if (shown) refresh(shown.id); });

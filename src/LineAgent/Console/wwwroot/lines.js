import { api, ApiError, el, formatTime, onMessageChange, typeWords, userTimeZone } from './lib.js';

const container = document.getElementById('lines');
const error = document.getElementById('lines-error');

const channelWords = { 'messages-app': 'Messages', messages: 'Messages', smtp: 'email server (SMTP)', twilio: 'Twilio', 'dry-run': 'dry-run outbox' };

/** Each part of Messages in words, and what to do when it is not right (as `lineagent doctor` says). */
const messagesParts = [
  ['messages', 'Messages app', {
    reachable: ['Running and answering'],
    not_running: ['Not running', 'Open Messages. A send opens it too; the health check does not.'],
    timed_out: ['Did not answer in time', 'If Messages hangs, quit it; the agent restarts it after a timeout.'],
    not_installed: ['Not available on this computer', 'Run the agent on a Mac, or with --dry-run here.'],
    error: ['Answered with an error', 'Open Messages and check it works; then look at the agent’s log.'],
  }],
  ['automation', 'Permission to control Messages', {
    granted: ['Allowed'],
    denied: ['Not allowed', 'System Settings > Privacy & Security > Automation: enable Messages for lineagent (or the terminal that runs it).'],
    unknown: ['Not known until Messages answers'],
  }],
  ['iMessageAccount', 'iMessage account', {
    signed_in: ['Signed in'],
    signed_out: ['Signed out', 'Messages > Settings > iMessage: sign in with the line’s Apple ID.'],
    missing: ['No iMessage account', 'Messages > Settings > iMessage: sign in with the line’s Apple ID.'],
    unknown: ['Not known'],
  }],
  ['smsAccount', 'Text messages through the iPhone', {
    available: ['Available'],
    missing: ['Not set up', 'iPhone > Settings > Messages > Text Message Forwarding: enable this Mac (or send this line’s SMS through Twilio).'],
    unknown: ['Not known'],
  }],
  ['fullDiskAccess', 'Reading the Messages history (to confirm sends)', {
    granted: ['Allowed'],
    denied: ['Not allowed: sends cannot be confirmed', 'System Settings > Privacy & Security > Full Disk Access: add the lineagent program.'],
    missing_db: ['The Messages database does not exist yet', 'Open Messages once and sign in.'],
    damaged_db: ['The Messages database is damaged: sends cannot be confirmed', 'Check that Bridge:ChatDbPath is Messages’ chat.db. The agent’s own database is not affected.'],
    unknown: ['Not known'],
  }],
];

/** No channel for this type on the line (e.g. no SMTP settings): it is not set up, not broken. */
const notSetUp = (h) => h.channel === 'unavailable' || h.channel === h.type;

function healthItem(h) {
  const type = typeWords[h.type] ?? h.type;
  if (notSetUp(h))
    return el('li', { className: 'state off' }, el('strong', {}, `${type}: `), 'not set up on this line', h.detail ? el('span', { className: 'hint' }, ` — ${h.detail}`) : '');
  const via = channelWords[h.channel] ?? h.channel;
  if (h.state === 'ok') return el('li', { className: 'state ok' }, el('strong', {}, `${type}: `), `ready (through ${via})`);
  const word = h.state === 'degraded' ? 'having trouble' : 'cannot send now';
  return el('li', { className: 'state bad' }, el('strong', {}, `${type}: `), `${word} (through ${via})`, h.detail ? el('p', { className: 'fix' }, h.detail) : '');
}

function messagesReport(report) {
  const items = messagesParts.map(([key, label, states]) => {
    const [words, fix] = states[report[key]] ?? [String(report[key] ?? 'unknown').replaceAll('_', ' ')];
    return el('li', { className: `state ${fix ? 'bad' : 'ok'}` }, el('strong', {}, `${label}: `), words, fix ? el('p', { className: 'fix' }, `Fix: ${fix}`) : '');
  });
  return el('details', { className: 'messages-report', open: items.some((i) => i.classList.contains('bad')) },
    el('summary', {}, 'Messages on this Mac'), el('ul', { className: 'health' }, ...items),
    report.detail ? el('p', { className: 'hint' }, report.detail) : '',
    el('p', { className: 'hint' }, `Checked ${formatTime(report.checkedAt)}.`));
}

/**
 * When the line's window opens, in the line's own zone, and in the browser's when that differs (probe: the browser's time
 * was labelled with the line's zone, "opens 3:00 AM (Europe/London)" for 08:00 there).
 */
function windowOpens(iso, zone) {
  if (!iso) return 'at its next opening';
  let there;
  try {
    there = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone: zone }).format(new Date(iso));
  } catch {
    return formatTime(iso); // a zone this browser does not know: the browser's own time, unlabelled
  }
  return !zone || zone === userTimeZone ? `${there} (${zone})` : `${there} in ${zone} (${formatTime(iso)} your time)`;
}

function usage(u, active) {
  if (!u) return el('p', { className: 'hint' }, 'No usage yet.');
  const capped = (label, n, max) => {
    const id = `m-${label.replace(/\W+/g, '-')}-${Math.random().toString(36).slice(2, 8)}`;
    if (!u.pacingEnabled || !max) return el('li', {}, `${label}: ${n}${u.pacingEnabled ? ' (no cap)' : ''}`);
    return el('li', {}, el('label', { htmlFor: id }, `${label}: ${n} of ${max}`), ' ',
      el('meter', { id, min: 0, max, value: n, low: max * 0.7, high: max * 0.9, optimum: 0 }));
  };
  const items = [
    capped('Sent today', u.sentToday, u.maxPerDay),
    capped('Sent in the last hour', u.sentLastHour, u.maxPerHour),
    capped('New conversations today', u.newConversationsToday, u.maxNewConversationsPerDay),
  ];
  if (!u.pacingEnabled) items.push(el('li', {}, 'No pacing: messages go out as soon as they are due.'));
  else items.push(el('li', {}, u.windowOpen ? 'Send window open now.' : `Send window closed; opens ${windowOpens(u.windowOpensAt, u.timeZone)}.`));
  if (u.lastSendAt) items.push(el('li', {}, `Last send ${formatTime(u.lastSendAt)}.`));
  // A paused line is held by the pause, not by its pacing (its state line says so).
  const laterThanWindow = active && u.heldUntil && (u.windowOpen || Date.parse(u.heldUntil) > Date.parse(u.windowOpensAt));
  if (laterThanWindow) items.push(el('li', {}, `Next send not before ${windowOpens(u.heldUntil, u.timeZone)}: ${u.heldBecause}.`));
  if (active && u.newConversationsHeldUntil) {
    items.push(el('li', {}, `First messages to new addresses wait until ${windowOpens(u.newConversationsHeldUntil, u.timeZone)}.`));
  }
  return el('ul', { className: 'usage' }, ...items);
}

function lineCard(line, dryRun) {
  const heading = `${line.name || line.id}`;
  const headingId = `line-${line.id}`;
  const toggle = el('button', { type: 'button', className: line.active ? '' : 'primary' }, line.active ? 'Pause line' : 'Resume line');
  toggle.addEventListener('click', async () => {
    toggle.disabled = true;
    try {
      await api(`/api/lines/${encodeURIComponent(line.id)}`, { method: 'PATCH', body: { active: !line.active } });
      await load();
      container.querySelector(`[aria-labelledby="${CSS.escape(headingId)}"] button`)?.focus();
    } catch (e) {
      toggle.disabled = false;
      error.textContent = e instanceof ApiError ? e.sentences.join(' ') : String(e);
      error.hidden = false;
    }
  });
  const good = line.health.filter((h) => !notSetUp(h)).every((h) => h.state === 'ok') && line.health.some((h) => h.state === 'ok');
  const state = !line.active ? 'Paused: nothing goes out from this line until you resume it.'
    : !good ? 'Needs attention: some messages cannot go out (see below).'
    : line.usage?.pacingEnabled && line.usage.windowOpen === false ? 'Working: it sends once its send window opens (see Today).'
    : line.usage?.heldUntil ? 'Working: its pacing holds the next send for now (see Today).'
    : 'Working: it can send now.';
  return el('section', { className: `card line ${line.active ? (good ? 'good' : 'warn') : 'paused'}`, ariaLabelledby: headingId },
    el('div', { className: 'line-head' },
      el('h2', { id: headingId }, heading, line.name && line.name !== line.id ? el('span', { className: 'muted' }, ` (${line.id})`) : ''),
      toggle),
    el('p', { className: 'line-state' }, state),
    el('h3', {}, 'Can it send?'),
    el('ul', { className: 'health' }, ...line.health.map(healthItem)),
    line.fallbackToSms ? el('p', { className: 'hint' }, 'A number without iMessage gets the message again as SMS.') : '',
    dryRun ? el('p', { className: 'hint' }, 'Dry run: sends are written as files to the outbox; Messages is not used.') : '',
    line.messages ? messagesReport(line.messages) : '',
    el('h3', {}, 'Today'),
    usage(line.usage, line.active));
}

async function load() {
  error.hidden = true;
  try {
    const status = await api('/api/status');
    // counts is null when the agent cannot read its database (storage says why, first as lastError).
    const c = status.counts;
    document.getElementById('agent-summary').textContent =
      `LineAgent ${status.version}${status.dryRun ? ' — DRY RUN' : ''}: ` +
      (c ? `${c.scheduled} scheduled, ${c.queued} queued, ${c.sentToday} sent today, ${c.failedToday} failed today.` : 'counts unknown (the database cannot be read).') +
      (status.lastError ? ` Last error: ${status.lastError.code ?? ''} ${status.lastError.message ?? ''}` : '');
    container.replaceChildren(...status.lines.map((l) => lineCard(l, status.dryRun)));
  } catch (e) {
    error.textContent = e instanceof ApiError ? e.sentences.join(' ') : String(e);
    error.hidden = false;
  }
}

// Usage changes with each send; reload at most every few seconds.
let timer = null;
onMessageChange(({ transition }) => {
  if (!['sent', 'fail', 'hand-off', 'confirm'].includes(transition) || timer) return;
  timer = setTimeout(() => { timer = null; load(); }, 3000);
});

load();

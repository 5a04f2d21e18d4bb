// latchkey account page: sign up, log in (with a password, a mailed link or a
// passkey, and a code from an authenticator app when it is on), reset a
// forgotten password, confirm an address, tasks and lists, secret messages,
// sessions, the authenticator app and passkeys, name, email and password,
// account deletion.
//
// It talks to the API with the HttpOnly auth cookies only, so no token is ever
// readable by this script (none is kept in web storage or a script-readable
// cookie). An expired access token is refreshed once for every request in
// flight, and those requests are retried; when the refresh fails, the log-in
// form shows.
//
// A visitor who has not signed in here costs no API request at all: the page
// remembers one bit, "this browser signed in on this page" (SIGNED_IN_HINT, not
// a credential), and asks the API who is signed in only when it is set, so a
// signed-out load logs no refused request in the browser's console.

/** The element with this id (the page's markup is fixed, so it exists). */
function byId(id) {
  const element = document.getElementById(id)
  if (!element) throw new Error(`#${id} is missing from the page`)
  return element
}

/** A new element; children are nodes or strings (always text, never HTML). */
function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value)
  element.append(...children)
  return element
}

/** A button whose accessible name adds `hiddenText` (visible to screen readers only). */
function button(label, hiddenText, className = 'small') {
  const attributes = { type: 'button' }
  if (className) attributes.class = className
  return el('button', attributes, label, el('span', { class: 'visually-hidden' }, hiddenText))
}

/** What the server put in `<meta name="latchkey-settings">` (plugins/account-page.ts). */
const SETTINGS = (() => {
  const defaults = { cookieSecure: false, signInLinks: true, requireEmailVerification: false }
  try {
    const content = document.querySelector('meta[name="latchkey-settings"]')?.getAttribute('content') ?? '{}'
    return { ...defaults, ...JSON.parse(content) }
  } catch {
    return defaults
  }
})()

// ---------------------------------------------------------------- the signed-in hint

const SIGNED_IN_HINT = 'latchkey:signed-in'

/** Web storage can be off (private modes, policies): then the API is asked every time. */
function hintSaysSignedIn() {
  try {
    return window.localStorage.getItem(SIGNED_IN_HINT) === 'yes'
  } catch {
    return true
  }
}

function setSignedInHint(signedIn) {
  try {
    if (signedIn) window.localStorage.setItem(SIGNED_IN_HINT, 'yes')
    else window.localStorage.removeItem(SIGNED_IN_HINT)
  } catch {
    // Storage is off: nothing to remember, and hintSaysSignedIn() asks the API.
  }
}

// ---------------------------------------------------------------- API client

/** A refused request, in the API's error shape (`status` 0: no answer at all). */
class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body?.message ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.code ?? (status === 0 ? 'NETWORK' : 'UNKNOWN')
    this.details = Array.isArray(body?.details) ? body.details : []
    this.retryAfter = retryAfter
  }
}

/** The session is gone; the page has already switched to the log-in form. */
class SignedOutError extends Error {}

/** A problem found before asking the server. */
class InputError extends Error {}

/** 401 codes that mean the access token did not get the caller in. */
const ACCESS_CODES = new Set(['AUTH_REQUIRED', 'ACCESS_TOKEN_EXPIRED', 'ACCESS_TOKEN_INVALID', 'SESSION_REVOKED'])

/** No answer within this long is "could not reach the server", not an endless wait. */
const REQUEST_TIMEOUT_MS = 30_000

const auth = {
  /** Whether a refresh cookie may exist: true while signed in here. */
  maybeSignedIn: false,
  /** Successful refreshes so far; tells a caller whether one happened since it asked. */
  refreshes: 0,
  /** The refresh in flight, shared by every caller (single flight). */
  refreshing: null,
}

/** One HTTP exchange; never throws. JSON Content-Type only when there is a body. */
async function send(method, url, body) {
  const init = { method, credentials: 'same-origin', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }
  if (body !== undefined) {
    init.headers = { 'content-type': 'application/json' }
    init.body = JSON.stringify(body)
  }
  let response
  try {
    response = await fetch(url, init)
  } catch {
    return { ok: false, status: 0, data: null, retryAfter: null }
  }
  const data = response.status === 204 || response.status === 202 ? null : await response.json().catch(() => null)
  return { ok: response.ok, status: response.status, data, retryAfter: response.headers.get('retry-after') }
}

const toApiError = (result) => new ApiError(result.status, result.data, result.retryAfter)

/** Refresh refusals that end the session, with what the user should know. */
const REFRESH_ENDINGS = {
  EMAIL_NOT_VERIFIED: 'Confirm your email address to go on: open the link we mailed you, then log in again.',
  ACCOUNT_DISABLED: 'This account is disabled. Contact the operator of this server.',
}

/**
 * Resolves { ok: true } once the access token is fresh again, else { ok: false,
 * notice } when the session is gone. Callers that failed before a refresh that
 * has since succeeded simply retry; all others share the one POST /auth/refresh.
 */
function refreshSession(refreshesSeen) {
  if (refreshesSeen !== auth.refreshes) return Promise.resolve({ ok: true })
  auth.refreshing ??= send('POST', '/auth/refresh').then((result) => {
    auth.refreshing = null
    if (result.ok) {
      auth.refreshes += 1
      return { ok: true }
    }
    if (result.status === 401) return { ok: false, notice: null }
    const ending = REFRESH_ENDINGS[result.data?.code]
    if (result.status === 403 && ending) return { ok: false, notice: ending }
    throw toApiError(result)
  })
  return auth.refreshing
}

function shouldRefresh(result) {
  if (result.status !== 401) return false
  const code = result.data?.code
  // Without an access cookie (the browser drops it when it expires), a signed-in
  // user's request arrives with none at all: AUTH_REQUIRED.
  return code === 'ACCESS_TOKEN_EXPIRED' || (code === 'AUTH_REQUIRED' && auth.maybeSignedIn)
}

/** Calls the API as the signed-in user; answers the body, throws ApiError or SignedOutError. */
async function api(method, url, body) {
  const refreshesSeen = auth.refreshes
  let result = await send(method, url, body)
  if (shouldRefresh(result)) {
    const refreshed = await refreshSession(refreshesSeen)
    if (!refreshed.ok) throw sessionEnded(refreshed.notice)
    result = await send(method, url, body)
  }
  if (result.status === 401 && ACCESS_CODES.has(result.data?.code)) throw sessionEnded(null)
  if (!result.ok) throw toApiError(result)
  return result.data
}

function sessionEnded(notice) {
  const wasSignedIn = !byId('signed-in').hidden
  // On the first load, a session found gone is no news: any notice already shown stays.
  const message = notice ?? (wasSignedIn ? 'You have been signed out. Log in again to continue.' : undefined)
  showSignedOut(message, { isError: Boolean(notice) })
  return new SignedOutError('signed out')
}

/** `path` with `?limit=` and, when there is one, `&cursor=` (plus other filters). */
function pageUrl(path, limit, cursor, filters = {}) {
  const query = new URLSearchParams({ limit: String(limit), ...filters })
  if (cursor) query.set('cursor', cursor)
  return `${path}?${query}`
}

// ---------------------------------------------------------------- words

function plural(count, unit) {
  return `${count} ${unit}${count === 1 ? '' : 's'}`
}

/** Retry-After (seconds or an HTTP date) in words. */
function waitText(retryAfter) {
  let seconds = Number(retryAfter)
  if (!Number.isFinite(seconds)) seconds = (Date.parse(retryAfter ?? '') - Date.now()) / 1000
  if (!Number.isFinite(seconds) || seconds <= 0) return 'a moment'
  if (seconds < 60) return plural(Math.ceil(seconds), 'second')
  if (seconds < 3600) return plural(Math.ceil(seconds / 60), 'minute')
  return plural(Math.ceil(seconds / 3600), 'hour')
}

const FIELD_PROBLEMS = {
  email: 'Enter a valid email address.',
  displayName: 'The display name can be at most 100 characters.',
  password: 'Enter a password.',
  currentPassword: 'Enter your current password.',
  newPassword: 'The new password must be 8 to 256 characters.',
  description: 'A description can be at most 2,000 characters.',
  message: 'A secret message needs 1 to 10,000 characters.',
}

/** The `title` field's limit depends on what it is the title of. */
const TITLE_PROBLEMS = {
  list: 'A list needs a title of at most 200 characters.',
  secret: 'A title can be at most 200 characters.',
}

const NOT_VERIFIED = () =>
  `Confirm your email address first: open the link we mailed you. No mail? ${
    SETTINGS.signInLinks
      ? '"Email me a sign-in link" below confirms the address too.'
      : '"Forgot password?" below sends a link that confirms the address too.'
  }`

/** An error in plain words; `context` is what the user was doing. */
function explain(error, context) {
  if (error instanceof InputError) return error.message
  if (!(error instanceof ApiError)) return 'Something went wrong on this page. Reload it and try again.'
  switch (error.code) {
    case 'NETWORK':
      return 'Could not reach the server. Check your connection and try again.'
    case 'EMAIL_TAKEN':
      return context === 'profile'
        ? 'That email is already used by another account.'
        : 'That email is already registered. Log in instead, or use another email.'
    case 'INVALID_CREDENTIALS':
      if (context === 'current-password') return 'Your current password is not right.'
      return context === 'confirm' ? 'That password is not right.' : 'Wrong email or password.'
    case 'PASSWORD_TOO_WEAK': {
      const reason = error.details[0]?.message ?? 'is too easy to guess'
      return `That password is too weak: it ${reason}.`
    }
    case 'RATE_LIMITED':
      return `Too many ${context === 'data' ? 'requests' : 'attempts'}: try again in ${waitText(error.retryAfter)}.`
    case 'VALIDATION_FAILED': {
      const field = error.details[0]?.field ?? ''
      if (field === 'title') return TITLE_PROBLEMS[context] ?? 'A task needs a title of at most 500 characters.'
      return FIELD_PROBLEMS[field] ?? 'Check what you entered and try again.'
    }
    case 'NOT_FOUND':
      return 'That item no longer exists. Reload the page to see the current state.'
    case 'INVALID_LIST':
      return 'That list no longer exists. Reload the page to see your lists.'
    case 'CSRF_REJECTED':
      return 'The request was refused because it did not come from this page. Reload it and try again.'
    case 'PAYLOAD_TOO_LARGE':
      return 'That is too long.'
    case 'EMAIL_NOT_VERIFIED':
      return NOT_VERIFIED()
    case 'ACCOUNT_DISABLED':
      return REFRESH_ENDINGS.ACCOUNT_DISABLED
    case 'PASSWORD_CONFIRMATION_REQUIRED':
      return 'Enter your password again to confirm, then retry.'
    case 'TOKEN_INVALID':
    case 'TOKEN_EXPIRED':
      return 'This link has expired or was already used.'
    case 'MFA_CODE_INVALID':
      return 'That code is not right, or was already used. Wait for the next code and try again.'
    case 'MFA_TOKEN_INVALID':
      return 'This sign-in took too long or had too many wrong codes. Log in again.'
    case 'PASSKEY_VERIFICATION_FAILED':
      return 'The passkey could not be used here. Try again, or use another way in.'
    case 'TOTP_ALREADY_ENABLED':
      return 'An authenticator app is already set up. Turn it off first to set up another.'
    case 'TOTP_NOT_ENABLED':
      return 'No authenticator app is set up. Reload the page to see the current state.'
    default:
      return error.status >= 500
        ? 'Something went wrong on the server. Try again in a moment.'
        : `The request was refused: ${error.message}`
  }
}

/** A mailed link that did not work, and what to do instead. */
const DEAD_LINKS = {
  'reset-password': 'This password-reset link has expired or was already used. Ask for a new one below.',
  'sign-in':
    'This sign-in link has expired or was already used. Ask for a new one below, or log in with your password.',
  'verify-email':
    'This confirmation link has expired, was already used, or is for an address the account no longer has. Log in and send a new one.',
  'confirm-email-change':
    'This email-change link has expired, was already used, or was replaced by a newer one. Change the address again to get a new link.',
}

function explainLink(error, action) {
  if (error instanceof ApiError && (error.code === 'TOKEN_INVALID' || error.code === 'TOKEN_EXPIRED')) {
    return DEAD_LINKS[action]
  }
  if (error instanceof ApiError && error.code === 'EMAIL_TAKEN') {
    return 'That address is now used by another account, so your email was not changed.'
  }
  return explain(error, 'link')
}

/** Runs a user action, showing any failure in its alert region. */
async function attempt(errorRegion, context, action) {
  errorRegion.textContent = ''
  try {
    await action()
  } catch (error) {
    if (!(error instanceof SignedOutError)) errorRegion.textContent = explain(error, context)
  }
}

/** Handles a form's submit: one at a time, the form marked busy meanwhile. */
function onSubmit(form, errorRegion, context, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    if (form.getAttribute('aria-busy') === 'true') return
    form.setAttribute('aria-busy', 'true')
    try {
      await attempt(errorRegion, context, action)
    } finally {
      form.removeAttribute('aria-busy')
    }
  })
}

/** Says something to screen readers without showing it. */
function announce(message) {
  const live = byId('live')
  live.textContent = ''
  // A fresh text node in a separate task is announced even if it repeats.
  setTimeout(() => {
    live.textContent = message
  }, 50)
}

/** Asks before an irreversible action; resolves true if the user confirmed. */
function confirmAction({ heading, text, action }) {
  const dialog = byId('confirm-dialog')
  byId('confirm-heading').textContent = heading
  byId('confirm-text').textContent = text
  byId('confirm-ok').textContent = action
  dialog.returnValue = ''
  dialog.showModal()
  byId('confirm-cancel').focus()
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true })
  })
}

// ---------------------------------------------------------------- times

const RELATIVE = new Intl.RelativeTimeFormat('en', { numeric: 'auto' })
const UNITS = [
  ['year', 31_536_000],
  ['month', 2_592_000],
  ['day', 86_400],
  ['hour', 3_600],
  ['minute', 60],
]

function timeAgo(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return RELATIVE.format(Math.round(seconds / size), unit)
  }
  return 'just now'
}

function timeElement(iso) {
  const time = el('time', { datetime: iso, title: new Date(iso).toLocaleString() })
  time.textContent = timeAgo(iso)
  return time
}

// ---------------------------------------------------------------- views

const VIEWS = ['loading', 'insecure', 'reset', 'signed-out', 'signed-in']

/** What the signed-in view shows, kept between renders. */
const state = {
  user: null,
  /** An address asked for under REQUIRE_EMAIL_VERIFICATION, not confirmed yet (this visit only). */
  pendingEmail: null,
  /** The token of the password-reset link being followed. */
  resetToken: null,
  /** The mfaToken of a login waiting for its second factor. */
  mfaToken: null,
  lists: [],
}

function showView(view) {
  for (const id of VIEWS) byId(id).hidden = id !== view
  byId('main').removeAttribute('aria-busy')
}

function setNotice(message, { isError = false } = {}) {
  const notice = byId('notice')
  notice.textContent = message
  notice.classList.toggle('is-error', isError && Boolean(message))
}

function closeDialogs() {
  for (const id of ['delete-dialog', 'confirm-dialog']) {
    const dialog = byId(id)
    if (dialog.open) dialog.close()
  }
}

/**
 * The log-in and sign-up forms. `notice` undefined keeps the notice shown;
 * `keepHint` when the session may well live on (the server could not be reached).
 */
function showSignedOut(notice, { isError = false, keepHint = false } = {}) {
  auth.maybeSignedIn = false
  if (!keepHint) setSignedInHint(false)
  state.user = null
  state.pendingEmail = null
  state.lists = []
  // The next account starts from "All tasks" and its own lists.
  renderLists()
  closeDialogs()
  const wasVisible = !byId('signed-out').hidden
  showView('signed-out')
  if (notice !== undefined) setNotice(notice, { isError })
  for (const id of ['task-list', 'session-list', 'list-list', 'secret-list', 'passkey-list', 'recovery-codes']) {
    byId(id).replaceChildren()
  }
  byId('totp-setup').hidden = true
  byId('recovery-panel').hidden = true
  // Nothing typed for this account stays for the next one.
  for (const id of [
    'task-form',
    'list-form',
    'secret-form',
    'profile-form',
    'password-form',
    'security-form',
    'totp-setup',
  ]) {
    byId(id).reset()
  }
  if (wasVisible) return
  // Nothing from an earlier visit to these forms lingers.
  for (const id of ['login-form', 'signup-form', 'forgot-form', 'link-form']) byId(id).reset()
  for (const id of ['login-error', 'signup-error', 'forgot-error', 'forgot-done', 'link-error', 'link-done']) {
    byId(id).textContent = ''
  }
  togglePanel('forgot', false)
  togglePanel('link-signin', false)
  if (byId('notice').textContent) byId('signed-out-heading').focus()
}

/** The user's name, address and banners; the forms of the signed-in view start from them. */
function showUser(user) {
  state.user = user
  if (state.pendingEmail === user.email) state.pendingEmail = null
  byId('profile-heading').textContent = user.displayName ? `Hello, ${user.displayName}` : 'Your account'
  byId('profile-email').textContent = user.email
  byId('verify-banner').hidden = user.emailVerified !== false
  byId('verify-email').textContent = user.email
  byId('pending-banner').hidden = state.pendingEmail === null
  byId('pending-email').textContent = state.pendingEmail ?? ''
  byId('pending-current').textContent = user.email
  // For password managers: the account a password form is about (kept by form.reset()).
  for (const input of document.querySelectorAll('input.username')) {
    input.defaultValue = user.email
    input.value = user.email
  }
  byId('profile-name').value = user.displayName ?? ''
  byId('profile-new-email').value = user.email
}

function showSignedIn(user) {
  auth.maybeSignedIn = true
  setSignedInHint(true)
  showUser(user)
  const regions = [
    'account-error',
    'tasks-error',
    'lists-error',
    'secrets-error',
    'sessions-error',
    'activity-error',
    'security-error',
    'verify-error',
  ]
  for (const id of [...regions, 'verify-status', 'profile-error', 'profile-done', 'password-error', 'password-done']) {
    byId(id).textContent = ''
  }
  showView('signed-in')
}

/** Loads everything the signed-in view shows; each part reports its own failure. */
async function loadSignedInData() {
  await Promise.all([
    attempt(byId('lists-error'), 'data', () => loadLists()),
    attempt(byId('tasks-error'), 'data', () => loadTasks()),
    attempt(byId('secrets-error'), 'data', () => loadSecrets()),
    attempt(byId('sessions-error'), 'data', () => loadSessions()),
    attempt(byId('activity-error'), 'data', () => loadActivity()),
    attempt(byId('security-error'), 'data', () => loadSecurity()),
  ])
}

/** After log-in, sign-up or a sign-in link: the signed-in view, with its data. */
async function enter(user, notice = '') {
  setNotice(notice)
  showSignedIn(user)
  byId('profile-heading').focus()
  const view = byId('signed-in')
  view.setAttribute('aria-busy', 'true')
  try {
    await loadSignedInData()
  } finally {
    view.removeAttribute('aria-busy')
  }
}

/** Secure cookies over plain http from another host: explain, instead of failing at sign-in. */
function showInsecure() {
  byId('insecure-origin').textContent = window.location.origin
  showView('insecure')
}

// ---------------------------------------------------------------- lists

const LIST_PAGE_SIZE = 100
/** Enough for any person's lists; the API pages them 100 at a time. */
const MAX_LISTS = 1000

function listTitle(listId) {
  return state.lists.find((list) => list.id === listId)?.title ?? 'a list'
}

function listPath(list) {
  return `/lists/${encodeURIComponent(list.id)}`
}

/** The list options of a select, keeping its choice while that list exists. */
function fillListSelect(select, firstLabel) {
  const chosen = select.value
  const options = state.lists.map((list) => {
    const option = el('option', { value: list.id }, list.title)
    option.selected = list.id === chosen
    return option
  })
  select.replaceChildren(el('option', { value: '' }, firstLabel), ...options)
  if (!state.lists.some((list) => list.id === chosen)) select.value = ''
}

function renderLists() {
  byId('list-list').replaceChildren(...state.lists.map(listItem))
  byId('lists-empty').hidden = state.lists.length > 0
  fillListSelect(byId('new-task-list'), 'No list')
  fillListSelect(byId('task-filter'), 'All tasks')
  for (const tag of byId('task-list').querySelectorAll('[data-list-id]')) {
    tag.textContent = listTitle(tag.getAttribute('data-list-id'))
  }
}

function listItem(list) {
  const item = el('li', { class: 'item' })
  const show = button('Show tasks', ` of list: ${list.title}`)
  const edit = button('Edit', ` list: ${list.title}`, 'small edit')
  const remove = button('Delete', ` list: ${list.title}`)
  const head = el(
    'div',
    { class: 'item-head' },
    el('p', { class: 'item-title' }, list.title),
    el('div', { class: 'item-actions' }, show, edit, remove),
  )
  item.append(head)
  if (list.description) item.append(el('p', { class: 'item-meta' }, list.description))

  show.addEventListener('click', () =>
    attempt(byId('lists-error'), 'data', async () => {
      byId('task-filter').value = list.id
      byId('new-task-list').value = list.id
      await loadTasks()
      byId('tasks-heading').focus()
      announce(`Showing the tasks of list ${list.title}`)
    }),
  )
  edit.addEventListener('click', () => item.replaceChildren(listEditForm(list, item)))
  remove.addEventListener('click', () =>
    attempt(byId('lists-error'), 'data', async () => {
      const confirmed = await confirmAction({
        heading: `Delete the list "${list.title}"?`,
        text: 'Its tasks are deleted with it. This cannot be undone.',
        action: 'Delete list',
      })
      if (!confirmed) return
      try {
        await api('DELETE', listPath(list))
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 'NOT_FOUND')) throw error
      }
      state.lists = state.lists.filter((other) => other.id !== list.id)
      renderLists()
      // Its tasks are gone too.
      await loadTasks()
      byId('new-list').focus()
      announce(`Deleted list ${list.title} and its tasks`)
    }),
  )
  return item
}

function listEditForm(list, item) {
  const id = `list-${list.id}`
  const form = el('form', { 'aria-label': `Edit list: ${list.title}` })
  const title = el('input', { id: `${id}-title`, name: 'title', type: 'text', required: '', maxlength: '200' })
  title.value = list.title
  const description = el('input', { id: `${id}-description`, name: 'description', type: 'text', maxlength: '2000' })
  description.value = list.description ?? ''
  const error = el('p', { class: 'error', role: 'alert' })
  const cancel = el('button', { type: 'button' }, 'Cancel')
  form.append(
    el('div', { class: 'field' }, el('label', { for: title.id }, 'Title'), title),
    el('div', { class: 'field' }, el('label', { for: description.id }, 'Description'), description),
    error,
    el('div', { class: 'actions start' }, el('button', { type: 'submit', class: 'primary' }, 'Save list'), cancel),
  )
  cancel.addEventListener('click', () => {
    const restored = listItem(list)
    item.replaceWith(restored)
    restored.querySelector('.edit')?.focus()
  })
  onSubmit(form, error, 'list', async () => {
    const newTitle = title.value.trim()
    if (!newTitle) throw new InputError('A list needs a title.')
    const { list: saved } = await api('PATCH', listPath(list), {
      title: newTitle,
      description: description.value.trim() || null,
    })
    state.lists = state.lists.map((other) => (other.id === saved.id ? saved : other))
    renderLists()
    byId('list-list').children[state.lists.findIndex((other) => other.id === saved.id)]?.querySelector('.edit')?.focus()
    announce(`Saved list ${saved.title}`)
  })
  setTimeout(() => title.focus(), 0)
  return form
}

async function loadLists() {
  const lists = []
  let cursor = null
  do {
    const page = await api('GET', pageUrl('/lists', LIST_PAGE_SIZE, cursor))
    lists.push(...page.items)
    cursor = page.nextCursor
  } while (cursor && lists.length < MAX_LISTS)
  state.lists = lists
  renderLists()
}

// ---------------------------------------------------------------- tasks

const TASK_PAGE_SIZE = 50
let nextTaskCursor = null
let taskCount = 0

function updateTasksEmpty() {
  const filtered = byId('task-filter').value !== ''
  const empty = byId('tasks-empty')
  empty.hidden = byId('task-list').children.length > 0
  empty.textContent = filtered ? 'No tasks in this list yet.' : 'No tasks yet. Add your first one above.'
  byId('tasks-more').hidden = nextTaskCursor === null
}

function taskPath(task) {
  return `/tasks/${encodeURIComponent(task.id)}`
}

function taskItem(task) {
  const inputId = `task-${++taskCount}`
  const checkbox = el('input', { type: 'checkbox', id: inputId })
  checkbox.checked = task.completed
  const remove = button('Delete', ` task: ${task.title}`)
  const item = el('li', { class: task.completed ? 'task completed' : 'task' }, checkbox)
  item.append(el('label', { for: inputId }, task.title))
  // In "All tasks", a task's list shows beside it.
  if (task.listId && byId('task-filter').value === '') {
    item.append(el('span', { class: 'tag', 'data-list-id': task.listId }, listTitle(task.listId)))
  }
  item.append(remove)

  checkbox.addEventListener('change', () =>
    attempt(byId('tasks-error'), 'data', async () => {
      const completed = checkbox.checked
      item.classList.toggle('completed', completed)
      try {
        const { task: saved } = await api('PATCH', taskPath(task), { completed })
        checkbox.checked = saved.completed
        item.classList.toggle('completed', saved.completed)
      } catch (error) {
        checkbox.checked = !completed
        item.classList.toggle('completed', !completed)
        throw error
      }
    }),
  )

  remove.addEventListener('click', () =>
    attempt(byId('tasks-error'), 'data', async () => {
      try {
        await api('DELETE', taskPath(task))
      } catch (error) {
        // Already gone (deleted in another tab): the goal is met.
        if (!(error instanceof ApiError && error.code === 'NOT_FOUND')) throw error
      }
      // Keep keyboard focus in the list rather than losing it with the button.
      const neighbour = item.nextElementSibling ?? item.previousElementSibling
      item.remove()
      updateTasksEmpty()
      const focusTarget = neighbour?.querySelector('input') ?? byId('new-task')
      focusTarget.focus()
      announce(`Deleted task: ${task.title}`)
    }),
  )
  return item
}

async function loadTasks(cursor = null) {
  const listId = byId('task-filter').value
  const page = await api('GET', pageUrl('/tasks', TASK_PAGE_SIZE, cursor, listId ? { listId } : {}))
  // The filter may have changed while this page was on its way.
  if (byId('task-filter').value !== listId) return
  const items = page.items.map(taskItem)
  if (cursor) byId('task-list').append(...items)
  else byId('task-list').replaceChildren(...items)
  nextTaskCursor = page.nextCursor
  updateTasksEmpty()
}

// ---------------------------------------------------------------- secret messages

const SECRET_PAGE_SIZE = 50
let nextSecretCursor = null

function secretPath(secret) {
  return `/secrets/${encodeURIComponent(secret.id)}`
}

function secretName(secret) {
  return secret.title || 'Untitled secret'
}

function updateSecretsEmpty() {
  byId('secrets-empty').hidden = byId('secret-list').children.length > 0
  byId('secrets-more').hidden = nextSecretCursor === null
}

/** One secret: its title and date; the message only once asked for (GET /secrets/:id). */
function secretItem(secret) {
  const item = el('li', { class: 'item' })
  const name = secretName(secret)
  const read = button('Read', ` secret: ${name}`)
  read.setAttribute('aria-expanded', 'false')
  const edit = button('Edit', ` secret: ${name}`, 'small edit')
  const remove = button('Delete', ` secret: ${name}`)
  const message = el('p', { class: 'secret-message', hidden: '' })
  const meta = el('p', { class: 'item-meta' }, 'saved ', timeElement(secret.updatedAt))
  item.append(
    el(
      'div',
      { class: 'item-head' },
      el('div', {}, el('p', { class: 'item-title' }, name), meta),
      el('div', { class: 'item-actions' }, read, edit, remove),
    ),
    message,
  )

  read.addEventListener('click', () =>
    attempt(byId('secrets-error'), 'data', async () => {
      if (!message.hidden) {
        message.hidden = true
        message.textContent = ''
        read.firstChild.textContent = 'Read'
        read.setAttribute('aria-expanded', 'false')
        return
      }
      const { secret: opened } = await api('GET', secretPath(secret))
      message.textContent = opened.message
      message.hidden = false
      read.firstChild.textContent = 'Hide'
      read.setAttribute('aria-expanded', 'true')
    }),
  )
  edit.addEventListener('click', () =>
    attempt(byId('secrets-error'), 'data', async () => {
      // The message as stored now (another tab may have changed it).
      const { secret: current } = await api('GET', secretPath(secret))
      item.replaceChildren(secretEditForm(current, item))
    }),
  )
  remove.addEventListener('click', () =>
    attempt(byId('secrets-error'), 'data', async () => {
      const confirmed = await confirmAction({
        heading: `Delete the secret "${name}"?`,
        text: 'The message is gone for good: nobody, not even the server operator, can bring it back.',
        action: 'Delete secret',
      })
      if (!confirmed) return
      try {
        await api('DELETE', secretPath(secret))
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 'NOT_FOUND')) throw error
      }
      item.remove()
      updateSecretsEmpty()
      byId('new-secret-message').focus()
      announce(`Deleted secret ${name}`)
    }),
  )
  return item
}

function secretEditForm(secret, item) {
  const id = `secret-${secret.id}`
  const form = el('form', { 'aria-label': `Edit secret: ${secretName(secret)}` })
  const title = el('input', { id: `${id}-title`, name: 'title', type: 'text', maxlength: '200' })
  title.value = secret.title ?? ''
  const message = el('textarea', { id: `${id}-message`, name: 'message', rows: '4', required: '', maxlength: '10000' })
  message.value = secret.message
  const error = el('p', { class: 'error', role: 'alert' })
  const cancel = el('button', { type: 'button' }, 'Cancel')
  form.append(
    el('div', { class: 'field' }, el('label', { for: title.id }, 'Title'), title),
    el('div', { class: 'field' }, el('label', { for: message.id }, 'Message'), message),
    error,
    el('div', { class: 'actions start' }, el('button', { type: 'submit', class: 'primary' }, 'Save secret'), cancel),
  )
  cancel.addEventListener('click', () => {
    const restored = secretItem(secret)
    item.replaceWith(restored)
    restored.querySelector('.edit')?.focus()
  })
  onSubmit(form, error, 'secret', async () => {
    if (!message.value.trim()) throw new InputError('A secret message cannot be empty.')
    const { secret: saved } = await api('PATCH', secretPath(secret), {
      title: title.value.trim() || null,
      message: message.value,
    })
    const restored = secretItem(saved)
    item.replaceWith(restored)
    restored.querySelector('.edit')?.focus()
    announce(`Saved secret ${secretName(saved)}`)
  })
  setTimeout(() => message.focus(), 0)
  return form
}

async function loadSecrets(cursor = null) {
  const page = await api('GET', pageUrl('/secrets', SECRET_PAGE_SIZE, cursor))
  const items = page.items.map(secretItem)
  if (cursor) byId('secret-list').append(...items)
  else byId('secret-list').replaceChildren(...items)
  nextSecretCursor = page.nextCursor
  updateSecretsEmpty()
}

// ---------------------------------------------------------------- sessions

async function logOutHere() {
  // `current` logout always succeeds and clears the cookies; no refresh needed.
  const result = await send('POST', '/auth/logout')
  if (!result.ok) throw toApiError(result)
  showSignedOut('You are logged out.')
}

/** How a session signed in (`signInMethod` of GET /auth/sessions). */
const SIGN_IN_METHOD_WORDS = {
  signup: 'signed up',
  password: 'password',
  'password+totp': 'password and app code',
  'password+recovery_code': 'password and recovery code',
  passkey: 'passkey',
  link: 'emailed link',
  'link+totp': 'emailed link and app code',
  'link+recovery_code': 'emailed link and recovery code',
}

function sessionItem(session) {
  // Named by the server (GET /auth/sessions: `device`).
  const device = session.device
  const heading = el('p', { class: 'session-device' }, device)
  if (session.current) heading.append(el('span', { class: 'badge' }, 'This device'))
  const meta = el(
    'p',
    { class: 'session-meta' },
    `IP ${session.ip ?? 'unknown'} · ${SIGN_IN_METHOD_WORDS[session.signInMethod] ?? 'signed in'} · last used `,
    timeElement(session.lastUsedAt),
  )
  // Ending this device's session is logging out: the button says so.
  const end = session.current
    ? el('button', { type: 'button', class: 'small' }, 'Log out of this device')
    : button('Revoke', ` ${device}`)
  end.addEventListener('click', () =>
    attempt(byId('sessions-error'), 'data', async () => {
      if (session.current) {
        await logOutHere()
        return
      }
      try {
        await api('DELETE', `/auth/sessions/${encodeURIComponent(session.id)}`)
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 'NOT_FOUND')) throw error
      }
      await loadSessions()
      await attempt(byId('activity-error'), 'data', () => loadActivity())
      byId('sessions-heading').focus()
      announce(`Revoked the session on ${device}`)
    }),
  )
  return el('li', { class: 'session' }, el('div', { class: 'session-info' }, heading, meta), end)
}

async function loadSessions() {
  const { items } = await api('GET', '/auth/sessions')
  // This device first, then the others as the API orders them (newest first).
  const ordered = [...items.filter((s) => s.current), ...items.filter((s) => !s.current)]
  byId('session-list').replaceChildren(...ordered.map(sessionItem))
  byId('logout-others').hidden = items.length < 2
}

// ---------------------------------------------------------------- sign-in security

/** Proves it is the owner before a security change: the password typed, or a code from the app. */
async function confirmForSecurity() {
  const typed = byId('security-password').value
  if (!typed) throw new InputError('Type your current password first (or a code from your authenticator app).')
  // Passwords have at least 8 characters: six digits can only be a code.
  const body = /^\d{6}$/.test(typed) ? { code: typed } : { password: typed }
  try {
    await api('POST', '/auth/password-confirmation', body)
  } catch (error) {
    if (error instanceof ApiError && ['INVALID_CREDENTIALS', 'MFA_CODE_INVALID'].includes(error.code)) {
      throw new InputError(body.code ? 'That code is not right.' : 'That password is not right.')
    }
    throw error
  }
  byId('security-password').value = ''
}

function showRecoveryCodes(codes) {
  byId('recovery-codes').replaceChildren(...codes.map((code) => el('li', {}, code)))
  byId('recovery-panel').hidden = false
  byId('recovery-heading').focus()
}

function passkeyItem(passkey) {
  const name = el('p', { class: 'session-device' }, passkey.name)
  const meta = el('p', { class: 'session-meta' }, 'Added ', timeElement(passkey.createdAt))
  if (passkey.lastUsedAt) meta.append(' · last used ', timeElement(passkey.lastUsedAt))
  const rename = button('Rename', ` passkey ${passkey.name}`)
  const remove = button('Delete', ` passkey ${passkey.name}`)
  const item = el('li', { class: 'session' }, el('div', { class: 'session-info' }, name, meta), rename, remove)
  rename.addEventListener('click', () => {
    const input = el('input', { type: 'text', maxlength: '100', 'aria-label': `New name for ${passkey.name}` })
    input.value = passkey.name
    const save = el('button', { type: 'submit', class: 'small' }, 'Save')
    const form = el('form', { class: 'inline-edit' }, input, save)
    onSubmit(form, byId('security-error'), 'data', async () => {
      const newName = input.value.trim()
      if (!newName) throw new InputError('A passkey needs a name.')
      await api('PATCH', `/users/me/passkeys/${encodeURIComponent(passkey.id)}`, { name: newName })
      await loadSecurity()
      announce(`Renamed the passkey to ${newName}`)
    })
    item.replaceChildren(form)
    input.focus()
  })
  remove.addEventListener('click', () =>
    attempt(byId('security-error'), 'data', async () => {
      await confirmForSecurity()
      await api('DELETE', `/users/me/passkeys/${encodeURIComponent(passkey.id)}`)
      await loadSecurity()
      byId('passkeys-heading').focus()
      announce(`Deleted the passkey ${passkey.name}`)
    }),
  )
  return item
}

/** The authenticator app's state and the passkeys. */
async function loadSecurity() {
  const [{ factors }, { items }] = await Promise.all([api('GET', '/users/me'), api('GET', '/users/me/passkeys')])
  byId('totp-status').textContent = factors.totp
    ? `On: a code is asked after your password. ${plural(factors.recoveryCodes, 'recovery code')} left.`
    : 'Off.'
  byId('totp-start').hidden = factors.totp
  byId('totp-off').hidden = !factors.totp
  byId('totp-recovery').hidden = !factors.totp
  byId('passkey-list').replaceChildren(...items.map(passkeyItem))
  byId('passkey-add').hidden = webAuthn() === null
}

function wireSecurity() {
  const errorRegion = byId('security-error')
  const done = (text) => {
    byId('security-done').textContent = text
  }
  byId('totp-start').addEventListener('click', () =>
    attempt(errorRegion, 'data', async () => {
      done('')
      await confirmForSecurity()
      const { secret, otpauthUri } = await api('POST', '/users/me/mfa/totp')
      const { renderSVG } = await import('/vendor/uqr.js')
      byId('totp-qr').src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(renderSVG(otpauthUri))}`
      byId('totp-secret').textContent = secret
      byId('totp-setup').hidden = false
      byId('totp-setup-heading').focus()
    }),
  )
  const setupForm = byId('totp-setup')
  onSubmit(setupForm, errorRegion, 'data', async () => {
    const { code } = formValues(setupForm)
    const { recoveryCodes } = await api('POST', '/users/me/mfa/totp/confirm', { code: code.trim() })
    setupForm.reset()
    setupForm.hidden = true
    await loadSecurity()
    showRecoveryCodes(recoveryCodes)
    done('Your authenticator app is on.')
  })
  byId('recovery-done').addEventListener('click', () => {
    byId('recovery-codes').replaceChildren()
    byId('recovery-panel').hidden = true
    byId('totp-heading').focus()
  })
  byId('totp-recovery').addEventListener('click', () =>
    attempt(errorRegion, 'data', async () => {
      done('')
      await confirmForSecurity()
      const { recoveryCodes } = await api('POST', '/users/me/mfa/recovery-codes')
      await loadSecurity()
      showRecoveryCodes(recoveryCodes)
    }),
  )
  byId('totp-off').addEventListener('click', () =>
    attempt(errorRegion, 'data', async () => {
      done('')
      await confirmForSecurity()
      await api('DELETE', '/users/me/mfa/totp')
      await loadSecurity()
      done('Your authenticator app is off: your password alone signs you in.')
    }),
  )
  byId('passkey-add').addEventListener('click', () =>
    attempt(errorRegion, 'data', async () => {
      done('')
      const library = webAuthn()
      if (!library) throw new InputError('This browser cannot use passkeys.')
      await confirmForSecurity()
      const optionsJSON = await api('POST', '/users/me/passkeys/registration-options')
      let response
      try {
        response = await library.startRegistration({ optionsJSON })
      } catch (error) {
        throw new InputError(passkeyProblem(error))
      }
      const { passkey } = await api('POST', '/users/me/passkeys', { response })
      await loadSecurity()
      done(`Added the passkey "${passkey.name}". You can now sign in with it, with no password.`)
    }),
  )
}

// ---------------------------------------------------------------- recent activity

/** Words for the event types of GET /users/me/security-events (src/auth/security-events.ts). */
const ACTIVITY_WORDS = {
  signup: 'Account created',
  login_succeeded: 'Signed in',
  login_failed: 'Wrong password entered',
  login_throttled: 'Sign-in attempts paused (too many wrong passwords)',
  refresh_reuse_detected: 'A stolen or replayed session token was refused; that session was ended',
  logout: 'Signed out',
  session_revoked: 'A session was ended',
  password_changed: 'Password changed',
  password_reset: 'Password reset by email',
  email_changed: 'Email address changed',
  totp_enabled: 'Authenticator app turned on',
  totp_disabled: 'Authenticator app turned off',
  recovery_code_used: 'Signed in with a recovery code',
  passkey_added: 'Passkey added',
  passkey_removed: 'Passkey deleted',
  account_disabled: 'Account disabled by an administrator',
  account_enabled: 'Account enabled by an administrator',
}

function activityItem(event) {
  const what = el('p', { class: 'session-device' }, ACTIVITY_WORDS[event.type] ?? event.type.replaceAll('_', ' '))
  const device = event.userAgent ? ` · ${event.device}` : ''
  const meta = el(
    'p',
    { class: 'session-meta' },
    `IP ${event.ip ?? 'unknown'}${device} · `,
    timeElement(event.createdAt),
  )
  return el('li', { class: 'session' }, el('div', { class: 'session-info' }, what, meta))
}

async function loadActivity() {
  const { items } = await api('GET', '/users/me/security-events?limit=10')
  byId('activity-list').replaceChildren(...items.map(activityItem))
}

// ---------------------------------------------------------------- mailed links

/**
 * The link this page was opened from (`#action=...&token=...`, src/mail/templates.ts),
 * taken out of the address bar at once so the token stays out of the history.
 */
function takeLink() {
  const fragment = window.location.hash.slice(1)
  if (!fragment) return null
  const params = new URLSearchParams(fragment)
  const action = params.get('action')
  const token = params.get('token')
  if (!action || !token) return null
  window.history.replaceState(null, '', window.location.pathname + window.location.search)
  return { action, token }
}

/** Follows a link; true when it decided what the page shows (else the account loads as usual). */
async function followLink() {
  const link = takeLink()
  if (!link) return false
  switch (link.action) {
    case 'reset-password':
      showReset(link.token)
      return true
    case 'sign-in': {
      const result = await send('POST', '/auth/sign-in-link/confirm', { token: link.token })
      if (result.ok) {
        await afterSignIn(result, 'You are signed in.')
        return true
      }
      setNotice(explainLink(toApiError(result), link.action), { isError: true })
      return false
    }
    case 'verify-email': {
      const result = await send('POST', '/auth/email-verification/confirm', { token: link.token })
      if (result.ok) setNotice(`Your email address ${result.data.user.email} is confirmed.`)
      else setNotice(explainLink(toApiError(result), link.action), { isError: true })
      return false
    }
    case 'confirm-email-change': {
      const result = await send('POST', '/auth/email-change/confirm', { token: link.token })
      if (result.ok) {
        state.pendingEmail = null
        setNotice(`Your email address is now ${result.data.user.email}.`)
      } else {
        setNotice(explainLink(toApiError(result), link.action), { isError: true })
      }
      return false
    }
    default:
      setNotice('This link is not one this page knows. Open the newest link from your mail.', { isError: true })
      return false
  }
}

function showReset(token) {
  state.resetToken = token
  closeDialogs()
  byId('reset-form').reset()
  byId('reset-error').textContent = ''
  setNotice('')
  showView('reset')
  byId('reset-heading').focus()
}

// ---------------------------------------------------------------- wiring

/**
 * The user of a successful sign-in. An account with a second factor answers
 * `mfaRequired` instead (API.md section 7), which this page cannot complete.
 */
/** After a right first factor: signed in, or (with an authenticator app on) the code form. */
async function afterSignIn(result, notice = '') {
  if (result.data?.mfaRequired) {
    askSecondFactor(result.data.mfaToken)
    return
  }
  await enter(result.data.user, notice)
}

/** The second step of a login: the code form, in place of the log-in form. */
function askSecondFactor(mfaToken) {
  state.mfaToken = mfaToken
  closeDialogs()
  showView('signed-out')
  byId('login-form').hidden = true
  byId('mfa-form').hidden = false
  byId('mfa-error').textContent = ''
  byId('mfa-heading').focus()
}

function endSecondFactor() {
  state.mfaToken = null
  byId('mfa-form').reset()
  byId('mfa-form').hidden = true
  byId('login-form').hidden = false
}

/** @simplewebauthn/browser (public/index.html loads it), if this browser can use passkeys. */
function webAuthn() {
  const library = window.SimpleWebAuthnBrowser
  return library?.browserSupportsWebAuthn() ? library : null
}

/** What went wrong in the browser's own passkey dialog, in plain words. */
function passkeyProblem(error) {
  if (error?.name === 'NotAllowedError') return 'The passkey request was cancelled or timed out.'
  if (error?.name === 'InvalidStateError') return 'This passkey is already registered to your account.'
  return 'This browser could not use a passkey here.'
}

function formValues(form) {
  const values = Object.fromEntries(new FormData(form))
  return Object.fromEntries(Object.entries(values).map(([name, value]) => [name, String(value)]))
}

/** Shows or hides a panel of the log-in card, with its toggle's state. */
function togglePanel(id, open) {
  const toggle = document.querySelector(`[aria-controls="${id}"]`)
  byId(id).hidden = !open
  toggle?.setAttribute('aria-expanded', String(open))
}

/** The "Forgot password?" and "Email me a sign-in link" panels: one mail request each. */
function wireMailRequest({ toggleId, panelId, formId, emailId, doneId, errorId, headingId, url, done }) {
  const toggle = byId(toggleId)
  toggle.addEventListener('click', () => {
    const open = byId(panelId).hidden
    togglePanel(panelId, open)
    if (!open) return
    // Start from the address typed to log in, if any.
    const typed = byId('login-email').value.trim()
    if (typed && !byId(emailId).value) byId(emailId).value = typed
    byId(doneId).textContent = ''
    byId(headingId).focus()
  })
  const form = byId(formId)
  onSubmit(form, byId(errorId), 'mail', async () => {
    byId(doneId).textContent = ''
    const email = byId(emailId).value.trim()
    const result = await send('POST', url, { email })
    if (!result.ok) throw toApiError(result)
    // The same answer for every address: the page cannot know, and says so.
    byId(doneId).textContent = done(email)
  })
}

function wireSignedOut() {
  const loginForm = byId('login-form')
  onSubmit(loginForm, byId('login-error'), 'login', async () => {
    const { email, password } = formValues(loginForm)
    const result = await send('POST', '/auth/login', { email: email.trim(), password })
    if (!result.ok) throw toApiError(result)
    loginForm.reset()
    await afterSignIn(result)
  })

  const mfaForm = byId('mfa-form')
  onSubmit(mfaForm, byId('mfa-error'), 'mfa', async () => {
    const typed = formValues(mfaForm).code.replace(/\s/g, '')
    const body = /^\d{6}$/.test(typed) ? { code: typed } : { recoveryCode: typed }
    const result = await send('POST', '/auth/mfa/verify', { mfaToken: state.mfaToken, ...body })
    if (!result.ok) {
      const error = toApiError(result)
      if (error.code === 'MFA_TOKEN_INVALID') {
        endSecondFactor()
        byId('login-error').textContent = explain(error, 'mfa')
        byId('login-email').focus()
        return
      }
      throw error
    }
    endSecondFactor()
    await enter(result.data.user)
  })
  byId('mfa-cancel').addEventListener('click', () => {
    endSecondFactor()
    byId('login-email').focus()
  })

  const passkeyLogin = byId('passkey-login')
  passkeyLogin.addEventListener('click', () =>
    attempt(byId('passkey-login-error'), 'passkey', async () => {
      const library = webAuthn()
      if (!library) throw new InputError('This browser cannot use passkeys.')
      const options = await send('POST', '/auth/passkeys/authentication-options')
      if (!options.ok) throw toApiError(options)
      let response
      try {
        response = await library.startAuthentication({ optionsJSON: options.data })
      } catch (error) {
        throw new InputError(passkeyProblem(error))
      }
      const result = await send('POST', '/auth/passkeys/login', { response })
      if (!result.ok) throw toApiError(result)
      await enter(result.data.user)
    }),
  )

  const signupForm = byId('signup-form')
  onSubmit(signupForm, byId('signup-error'), 'signup', async () => {
    const { email, password, displayName } = formValues(signupForm)
    const body = { email: email.trim(), password }
    if (displayName.trim()) body.displayName = displayName.trim()
    const result = await send('POST', '/auth/signup', body)
    if (!result.ok) throw toApiError(result)
    signupForm.reset()
    await enter(result.data.user)
  })

  wireMailRequest({
    toggleId: 'forgot-open',
    panelId: 'forgot',
    formId: 'forgot-form',
    emailId: 'forgot-email',
    doneId: 'forgot-done',
    errorId: 'forgot-error',
    headingId: 'forgot-heading',
    url: '/auth/password-reset',
    done: (email) => `If an account uses ${email}, a link to choose a new password is on its way. Check your inbox.`,
  })
  if (SETTINGS.signInLinks) {
    wireMailRequest({
      toggleId: 'link-open',
      panelId: 'link-signin',
      formId: 'link-form',
      emailId: 'link-email',
      doneId: 'link-done',
      errorId: 'link-error',
      headingId: 'link-heading',
      url: '/auth/sign-in-link',
      done: (email) => `If an account uses ${email}, a sign-in link is on its way. Open it in this browser.`,
    })
  } else {
    byId('link-open').hidden = true
  }

  const resetForm = byId('reset-form')
  onSubmit(resetForm, byId('reset-error'), 'reset', async () => {
    const { email, newPassword } = formValues(resetForm)
    const result = await send('POST', '/auth/password-reset/confirm', { token: state.resetToken, newPassword })
    if (!result.ok) {
      const error = toApiError(result)
      if (error.code !== 'TOKEN_INVALID' && error.code !== 'TOKEN_EXPIRED') throw error
      state.resetToken = null
      showSignedOut(explainLink(error, 'reset-password'), { isError: true })
      byId('forgot-email').value = email.trim()
      togglePanel('forgot', true)
      return
    }
    state.resetToken = null
    resetForm.reset()
    // Every session has just ended; sign in here with the new password.
    const login = await send('POST', '/auth/login', { email: email.trim(), password: newPassword })
    if (login.ok) {
      await afterSignIn(login, 'Your new password is set, and every other session is logged out.')
      return
    }
    showSignedOut(`Your new password is set. Log in with it. (${explain(toApiError(login), 'login')})`)
    byId('login-email').value = email.trim()
  })
  byId('reset-cancel').addEventListener('click', () => {
    state.resetToken = null
    loadAccount().catch(pageFailed)
  })
}

function wireSignedIn() {
  byId('logout').addEventListener('click', () => attempt(byId('account-error'), 'data', logOutHere))

  byId('logout-others').addEventListener('click', () =>
    attempt(byId('sessions-error'), 'data', async () => {
      await api('POST', '/auth/logout', { scope: 'others' })
      await loadSessions()
      announce('Logged out all other sessions')
    }),
  )

  byId('verify-resend').addEventListener('click', () => {
    byId('verify-status').textContent = ''
    return attempt(byId('verify-error'), 'mail', async () => {
      await api('POST', '/auth/email-verification')
      byId('verify-status').textContent = `Sent. Check the inbox of ${state.user?.email ?? 'your address'}.`
    })
  })

  // Tasks: add (to the chosen list), filter by list, page.
  const taskForm = byId('task-form')
  const newTask = byId('new-task')
  onSubmit(taskForm, byId('tasks-error'), 'data', async () => {
    const title = newTask.value.trim()
    if (!title) throw new InputError('Type a task first.')
    const listId = byId('new-task-list').value
    const { task } = await api('POST', '/tasks', listId ? { title, listId } : { title })
    const filter = byId('task-filter').value
    if (filter === '' || filter === task.listId) byId('task-list').prepend(taskItem(task))
    newTask.value = ''
    updateTasksEmpty()
    announce(task.listId ? `Added task: ${task.title}, to ${listTitle(task.listId)}` : `Added task: ${task.title}`)
  })
  byId('task-filter').addEventListener('change', () =>
    attempt(byId('tasks-error'), 'data', async () => {
      const listId = byId('task-filter').value
      if (listId) byId('new-task-list').value = listId
      await loadTasks()
    }),
  )
  byId('tasks-more').addEventListener('click', () =>
    attempt(byId('tasks-error'), 'data', () => loadTasks(nextTaskCursor)),
  )

  // Lists.
  const listForm = byId('list-form')
  onSubmit(listForm, byId('lists-error'), 'list', async () => {
    const { title, description } = formValues(listForm)
    if (!title.trim()) throw new InputError('Type a name for the list first.')
    const body = { title: title.trim() }
    if (description.trim()) body.description = description.trim()
    const { list } = await api('POST', '/lists', body)
    state.lists = [list, ...state.lists]
    renderLists()
    listForm.reset()
    byId('new-list').focus()
    announce(`Added list ${list.title}`)
  })

  // Secret messages.
  const secretForm = byId('secret-form')
  onSubmit(secretForm, byId('secrets-error'), 'secret', async () => {
    const { title, message } = formValues(secretForm)
    if (!message.trim()) throw new InputError('Type a message first.')
    const body = { message }
    if (title.trim()) body.title = title.trim()
    const { secret } = await api('POST', '/secrets', body)
    byId('secret-list').prepend(secretItem(secret))
    updateSecretsEmpty()
    secretForm.reset()
    announce(`Saved secret ${secretName(secret)}`)
  })
  byId('secrets-more').addEventListener('click', () =>
    attempt(byId('secrets-error'), 'data', () => loadSecrets(nextSecretCursor)),
  )

  // Name and email, after the password confirms it is the owner.
  const profileForm = byId('profile-form')
  onSubmit(profileForm, byId('profile-error'), 'profile', async () => {
    byId('profile-done').textContent = ''
    const { displayName, email, password } = formValues(profileForm)
    const user = state.user
    if (!user) return
    const body = {}
    const name = displayName.trim()
    if (name !== (user.displayName ?? '')) body.displayName = name || null
    const newEmail = email.trim().toLowerCase()
    if (newEmail !== user.email) body.email = newEmail
    if (Object.keys(body).length === 0) throw new InputError('Nothing to save: change your name or email first.')
    try {
      await api('POST', '/auth/password-confirmation', { password })
    } catch (error) {
      if (error instanceof ApiError && error.code === 'INVALID_CREDENTIALS') {
        throw new InputError('That password is not right.')
      }
      throw error
    }
    const { user: saved } = await api('PATCH', '/users/me', body)
    byId('profile-password').value = ''
    let done = 'Saved.'
    if (body.email !== undefined) {
      if (saved.email === body.email) {
        state.pendingEmail = null
        done = `Saved. Your email address is now ${saved.email}; we mailed it a link to confirm it.`
      } else {
        // REQUIRE_EMAIL_VERIFICATION: the address changes when the link is opened.
        state.pendingEmail = body.email
        done = `We mailed a link to ${body.email}. Your address changes when you open it.`
      }
    }
    showUser(saved)
    byId('profile-done').textContent = done
  })

  // Password.
  const passwordForm = byId('password-form')
  onSubmit(passwordForm, byId('password-error'), 'current-password', async () => {
    byId('password-done').textContent = ''
    const { currentPassword, newPassword } = formValues(passwordForm)
    await api('PUT', '/users/me/password', { currentPassword, newPassword })
    passwordForm.reset()
    byId('password-done').textContent = 'Your password is changed. Your other sessions were logged out.'
    await attempt(byId('sessions-error'), 'data', () => loadSessions())
  })

  // Account deletion.
  const dialog = byId('delete-dialog')
  const deleteForm = byId('delete-form')
  byId('delete-open').addEventListener('click', () => {
    deleteForm.reset()
    byId('delete-error').textContent = ''
    dialog.showModal()
  })
  byId('delete-cancel').addEventListener('click', () => dialog.close())
  dialog.addEventListener('close', () => {
    if (!byId('signed-in').hidden) byId('delete-open').focus()
  })
  onSubmit(deleteForm, byId('delete-error'), 'confirm', async () => {
    const { password } = formValues(deleteForm)
    // Proves the password for this session (a short-lived HttpOnly cookie), then deletes.
    await api('POST', '/auth/password-confirmation', { password })
    await api('DELETE', '/users/me')
    deleteForm.reset()
    showSignedOut('Your account has been deleted.')
  })
}

/** Who is signed in, and their data; the log-in form when nobody is. */
async function loadAccount() {
  if (!hintSaysSignedIn()) {
    // Never signed in on this page in this browser (or signed out since): no need to ask.
    showSignedOut()
    return
  }
  auth.maybeSignedIn = true
  // All at once: if the access token has expired they share one refresh.
  const [me, lists, tasks, secrets, sessions, activity, security] = await Promise.allSettled([
    api('GET', '/users/me'),
    loadLists(),
    loadTasks(),
    loadSecrets(),
    loadSessions(),
    loadActivity(),
    loadSecurity(),
  ])
  if (me.status === 'rejected') {
    if (!(me.reason instanceof SignedOutError)) {
      // No answer (or a server error): the session may well be alive, so a reload asks again.
      showSignedOut(undefined, { keepHint: true })
      byId('login-error').textContent = explain(me.reason, 'data')
    }
    return
  }
  showSignedIn(me.value.user)
  const failures = [
    [lists, 'lists-error'],
    [tasks, 'tasks-error'],
    [secrets, 'secrets-error'],
    [sessions, 'sessions-error'],
    [activity, 'activity-error'],
    [security, 'security-error'],
  ]
  for (const [outcome, region] of failures) {
    if (outcome.status === 'rejected') byId(region).textContent = explain(outcome.reason, 'data')
  }
}

async function start() {
  if (SETTINGS.cookieSecure && !window.isSecureContext) {
    showInsecure()
    return
  }
  wireSignedOut()
  wireSignedIn()
  wireSecurity()
  // A link opened while the page is already open changes only the fragment.
  window.addEventListener('hashchange', () => {
    followLink()
      .then((decided) => (decided ? undefined : loadAccount()))
      .catch(pageFailed)
  })
  if (await followLink()) return
  await loadAccount()
}

/** A bug of this page, not a refusal of the API: say so rather than leave a blank or spinning page. */
function pageFailed() {
  showView('signed-out')
  setNotice('Something went wrong on this page. Reload it and try again.', { isError: true })
}

start().catch(pageFailed)

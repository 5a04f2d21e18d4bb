// latchkey account page: sign up, log in, tasks, sessions, account deletion.
// It talks to the API with the HttpOnly auth cookies only, so no token is ever
// readable by this script (none is kept in web storage or a script-readable cookie).
// An expired access token is refreshed once for every request in flight, and
// those requests are retried; when the refresh fails, the log-in form shows.

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

const auth = {
  /** Whether a refresh cookie may exist: true until an answer says otherwise. */
  maybeSignedIn: true,
  /** Successful refreshes so far; tells a caller whether one happened since it asked. */
  refreshes: 0,
  /** The refresh in flight, shared by every caller (single flight). */
  refreshing: null,
}

/** One HTTP exchange; never throws. JSON Content-Type only when there is a body. */
async function send(method, url, body) {
  const init = { method, credentials: 'same-origin' }
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
  const data = response.status === 204 ? null : await response.json().catch(() => null)
  return { ok: response.ok, status: response.status, data, retryAfter: response.headers.get('retry-after') }
}

const toApiError = (result) => new ApiError(result.status, result.data, result.retryAfter)

/**
 * Resolves true once the access token is fresh again, false if the session is
 * gone. Callers that failed before a refresh that has since succeeded simply
 * retry; all others share the one POST /auth/refresh in flight.
 */
function refreshSession(refreshesSeen) {
  if (refreshesSeen !== auth.refreshes) return Promise.resolve(true)
  auth.refreshing ??= send('POST', '/auth/refresh').then((result) => {
    auth.refreshing = null
    if (result.ok) {
      auth.refreshes += 1
      return true
    }
    if (result.status === 401) return false
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
    if (!(await refreshSession(refreshesSeen))) throw sessionEnded()
    result = await send(method, url, body)
  }
  if (result.status === 401 && ACCESS_CODES.has(result.data?.code)) throw sessionEnded()
  if (!result.ok) throw toApiError(result)
  return result.data
}

function sessionEnded() {
  const wasSignedIn = !byId('signed-in').hidden
  showSignedOut(wasSignedIn ? 'You have been signed out. Log in again to continue.' : '')
  return new SignedOutError('signed out')
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
  title: 'A task needs a title of at most 500 characters.',
}

/** An error in plain words; `context` is what the user was doing. */
function explain(error, context) {
  if (error instanceof InputError) return error.message
  if (!(error instanceof ApiError)) return 'Something went wrong on this page. Reload it and try again.'
  switch (error.code) {
    case 'NETWORK':
      return 'Could not reach the server. Check your connection and try again.'
    case 'EMAIL_TAKEN':
      return 'That email is already registered. Log in instead, or use another email.'
    case 'INVALID_CREDENTIALS':
      return context === 'confirm' ? 'That password is not right.' : 'Wrong email or password.'
    case 'PASSWORD_TOO_WEAK': {
      const reason = error.details[0]?.message ?? 'is too easy to guess'
      return `That password is too weak: it ${reason}.`
    }
    case 'RATE_LIMITED':
      return `Too many ${context === 'data' ? 'requests' : 'attempts'}: try again in ${waitText(error.retryAfter)}.`
    case 'VALIDATION_FAILED': {
      const field = error.details[0]?.field ?? ''
      return FIELD_PROBLEMS[field] ?? 'Check what you entered and try again.'
    }
    case 'NOT_FOUND':
      return 'That item no longer exists. Reload the page to see the current state.'
    case 'CSRF_REJECTED':
      return 'The request was refused because it did not come from this page. Reload it and try again.'
    case 'PAYLOAD_TOO_LARGE':
      return 'That is too long.'
    default:
      return error.status >= 500
        ? 'Something went wrong on the server. Try again in a moment.'
        : `The request was refused: ${error.message}`
  }
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

// ---------------------------------------------------------------- devices and times

const BROWSERS = [
  ['Edg', 'Edge'],
  ['OPR/', 'Opera'],
  ['Firefox/', 'Firefox'],
  ['FxiOS/', 'Firefox'],
  ['CriOS/', 'Chrome'],
  ['Chrome/', 'Chrome'],
  ['Safari/', 'Safari'],
]
const SYSTEMS = [
  ['Android', 'Android'],
  ['iPhone', 'iPhone'],
  ['iPad', 'iPad'],
  ['Windows', 'Windows'],
  ['Mac OS X', 'macOS'],
  ['CrOS', 'ChromeOS'],
  ['Linux', 'Linux'],
]

/** "Chrome on Linux" from a user agent; good enough to tell one's devices apart. */
function describeDevice(userAgent) {
  if (!userAgent) return 'Unknown device'
  const pick = (table) => table.find(([token]) => userAgent.includes(token))?.[1]
  const browser = pick(BROWSERS) ?? (userAgent.split(/[\s/]/)[0]?.slice(0, 40) || 'Unknown browser')
  const system = pick(SYSTEMS)
  return system ? `${browser} on ${system}` : browser
}

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

// ---------------------------------------------------------------- views

const VIEWS = ['loading', 'signed-out', 'signed-in']

function showView(view) {
  for (const id of VIEWS) byId(id).hidden = id !== view
  byId('main').removeAttribute('aria-busy')
}

function setNotice(message) {
  byId('notice').textContent = message
}

function showSignedOut(notice) {
  auth.maybeSignedIn = false
  const dialog = byId('delete-dialog')
  if (dialog.open) dialog.close()
  const wasVisible = !byId('signed-out').hidden
  showView('signed-out')
  setNotice(notice)
  byId('task-list').replaceChildren()
  byId('session-list').replaceChildren()
  if (wasVisible) return
  // Nothing from an earlier visit to these forms lingers.
  for (const id of ['login-form', 'signup-form']) byId(id).reset()
  for (const id of ['login-error', 'signup-error']) byId(id).textContent = ''
  if (notice) byId('signed-out-heading').focus()
}

function showSignedIn(user) {
  auth.maybeSignedIn = true
  byId('profile-heading').textContent = user.displayName ? `Hello, ${user.displayName}` : 'Your account'
  byId('profile-email').textContent = user.email
  for (const id of ['account-error', 'tasks-error', 'sessions-error']) byId(id).textContent = ''
  showView('signed-in')
}

/** After log-in or sign-up: the signed-in view, with its data. */
async function enter(user) {
  setNotice('')
  showSignedIn(user)
  byId('profile-heading').focus()
  await Promise.all([
    attempt(byId('tasks-error'), 'data', () => loadTasks()),
    attempt(byId('sessions-error'), 'data', () => loadSessions()),
  ])
}

// ---------------------------------------------------------------- tasks

const TASK_PAGE_SIZE = 50
let nextTaskCursor = null
let taskCount = 0

function updateTasksEmpty() {
  byId('tasks-empty').hidden = byId('task-list').children.length > 0
  byId('tasks-more').hidden = nextTaskCursor === null
}

function taskPath(task) {
  return `/tasks/${encodeURIComponent(task.id)}`
}

function taskItem(task) {
  const inputId = `task-${++taskCount}`
  const checkbox = el('input', { type: 'checkbox', id: inputId })
  checkbox.checked = task.completed
  const remove = el(
    'button',
    { type: 'button', class: 'small' },
    'Delete',
    el('span', { class: 'visually-hidden' }, ` task: ${task.title}`),
  )
  const item = el('li', { class: task.completed ? 'task completed' : 'task' }, checkbox)
  item.append(el('label', { for: inputId }, task.title), remove)

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
  const query = new URLSearchParams({ limit: String(TASK_PAGE_SIZE) })
  if (cursor) query.set('cursor', cursor)
  const page = await api('GET', `/tasks?${query}`)
  const items = page.items.map(taskItem)
  if (cursor) byId('task-list').append(...items)
  else byId('task-list').replaceChildren(...items)
  nextTaskCursor = page.nextCursor
  updateTasksEmpty()
}

// ---------------------------------------------------------------- sessions

function sessionItem(session) {
  const device = describeDevice(session.userAgent)
  const heading = el('p', { class: 'session-device' }, device)
  if (session.current) heading.append(el('span', { class: 'badge' }, 'This device'))
  const lastUsed = el('time', { datetime: session.lastUsedAt, title: new Date(session.lastUsedAt).toLocaleString() })
  lastUsed.textContent = timeAgo(session.lastUsedAt)
  const meta = el('p', { class: 'session-meta' }, `IP ${session.ip ?? 'unknown'} · last used `, lastUsed)
  const revoke = el(
    'button',
    { type: 'button', class: 'small' },
    'Revoke',
    el('span', { class: 'visually-hidden' }, ` ${device}${session.current ? ' (this device)' : ''}`),
  )
  revoke.addEventListener('click', () =>
    attempt(byId('sessions-error'), 'data', async () => {
      try {
        await api('DELETE', `/auth/sessions/${encodeURIComponent(session.id)}`)
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 'NOT_FOUND')) throw error
      }
      if (session.current) {
        showSignedOut('You logged out of this device.')
        return
      }
      await loadSessions()
      byId('sessions-heading').focus()
      announce(`Revoked the session on ${device}`)
    }),
  )
  return el('li', { class: 'session' }, el('div', { class: 'session-info' }, heading, meta), revoke)
}

async function loadSessions() {
  const { items } = await api('GET', '/auth/sessions')
  // This device first, then the others as the API orders them (newest first).
  const ordered = [...items.filter((s) => s.current), ...items.filter((s) => !s.current)]
  byId('session-list').replaceChildren(...ordered.map(sessionItem))
  byId('logout-others').hidden = items.length < 2
}

// ---------------------------------------------------------------- wiring

function formValues(form) {
  const values = Object.fromEntries(new FormData(form))
  return Object.fromEntries(Object.entries(values).map(([name, value]) => [name, String(value)]))
}

function wireSignedOut() {
  const loginForm = byId('login-form')
  onSubmit(loginForm, byId('login-error'), 'login', async () => {
    const { email, password } = formValues(loginForm)
    const result = await send('POST', '/auth/login', { email: email.trim(), password })
    if (!result.ok) throw toApiError(result)
    loginForm.reset()
    await enter(result.data.user)
  })

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
}

function wireSignedIn() {
  byId('logout').addEventListener('click', () =>
    attempt(byId('account-error'), 'data', async () => {
      // `current` logout always succeeds and clears the cookies; no refresh needed.
      const result = await send('POST', '/auth/logout')
      if (!result.ok) throw toApiError(result)
      showSignedOut('You are logged out.')
    }),
  )

  byId('logout-others').addEventListener('click', () =>
    attempt(byId('sessions-error'), 'data', async () => {
      await api('POST', '/auth/logout', { scope: 'others' })
      await loadSessions()
      announce('Logged out all other sessions')
    }),
  )

  const taskForm = byId('task-form')
  const newTask = byId('new-task')
  onSubmit(taskForm, byId('tasks-error'), 'data', async () => {
    const title = newTask.value.trim()
    if (!title) throw new InputError('Type a task first.')
    const { task } = await api('POST', '/tasks', { title })
    byId('task-list').prepend(taskItem(task))
    newTask.value = ''
    updateTasksEmpty()
    announce(`Added task: ${task.title}`)
  })

  byId('tasks-more').addEventListener('click', () =>
    attempt(byId('tasks-error'), 'data', () => loadTasks(nextTaskCursor)),
  )

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

async function start() {
  wireSignedOut()
  wireSignedIn()
  // All three at once: if the access token has expired they share one refresh.
  const [me, tasks, sessions] = await Promise.allSettled([api('GET', '/users/me'), loadTasks(), loadSessions()])
  if (me.status === 'rejected') {
    if (!(me.reason instanceof SignedOutError)) {
      showSignedOut('')
      byId('login-error').textContent = explain(me.reason, 'data')
    }
    return
  }
  showSignedIn(me.value.user)
  if (tasks.status === 'rejected') byId('tasks-error').textContent = explain(tasks.reason, 'data')
  if (sessions.status === 'rejected') byId('sessions-error').textContent = explain(sessions.reason, 'data')
}

start()

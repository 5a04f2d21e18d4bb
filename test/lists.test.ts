import t from 'tap'
import { clientFor } from './data-helper.js'
import { buildTestApp, cookieHeader, signup } from './helper.js'

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

t.test('lists: create, read, change, delete', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))

  const created = await api('POST', '/lists', { title: 'Groceries' })
  t.equal(created.statusCode, 201, created.body)
  const { list } = created.json()
  t.same(Object.keys(list).sort(), ['createdAt', 'description', 'id', 'title', 'updatedAt'])
  t.match(list, { title: 'Groceries', description: null, createdAt: ISO, updatedAt: ISO })
  t.equal(list.createdAt, list.updatedAt)

  const read = await api('GET', `/lists/${list.id}`)
  t.equal(read.statusCode, 200, read.body)
  t.same(read.json(), { list })

  const withDescription = await api('POST', '/lists', { title: 'Work', description: 'Things to do at work' })
  t.equal(withDescription.json().list.description, 'Things to do at work')

  clock.advance(5)
  const renamed = await api('PATCH', `/lists/${list.id}`, { title: 'Food', description: 'weekly' })
  t.equal(renamed.statusCode, 200, renamed.body)
  t.match(renamed.json().list, { id: list.id, title: 'Food', description: 'weekly', createdAt: list.createdAt })
  t.ok(renamed.json().list.updatedAt > list.updatedAt, 'updatedAt moves on')

  const cleared = await api('PATCH', `/lists/${list.id}`, { description: null })
  t.match(cleared.json().list, { title: 'Food', description: null })

  const unchanged = await api('PATCH', `/lists/${list.id}`, {})
  t.equal(unchanged.statusCode, 200, unchanged.body)
  t.same(unchanged.json(), cleared.json(), 'an empty PATCH changes nothing')

  const deleted = await api('DELETE', `/lists/${list.id}`)
  t.equal(deleted.statusCode, 204, deleted.body)
  t.equal(deleted.body, '')
  for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
    const gone = await api(method, `/lists/${list.id}`, method === 'PATCH' ? { title: 'x' } : undefined)
    t.equal(gone.statusCode, 404, `${method} after delete`)
    t.equal(gone.json().code, 'NOT_FOUND')
  }
})

t.test('lists need an access token', async (t) => {
  const { app } = await buildTestApp(t)
  for (const [method, url] of [
    ['GET', '/lists'],
    ['POST', '/lists'],
    ['GET', '/lists/x'],
    ['PATCH', '/lists/x'],
    ['DELETE', '/lists/x'],
  ] as const) {
    const response = await app.inject({ method, url, ...(method === 'POST' ? { payload: { title: 'x' } } : {}) })
    t.equal(response.statusCode, 401, `${method} ${url}`)
    t.equal(response.json().code, 'AUTH_REQUIRED')
  }
})

t.test("another user's list is 404 on every verb and never listed", async (t) => {
  const { app } = await buildTestApp(t)
  const alice = clientFor(app, await signup(app))
  const mallory = clientFor(app, await signup(app))
  const { list } = (await alice('POST', '/lists', { title: 'Private', description: 'alice only' })).json()

  const probes = [
    ['GET', undefined],
    ['PATCH', { title: 'pwned' }],
    ['PATCH', {}],
    ['DELETE', undefined],
  ] as const
  for (const [method, payload] of probes) {
    for (const id of [list.id, 'no-such-id', '00000000-0000-4000-8000-000000000000']) {
      const response = await mallory(method, `/lists/${id}`, payload)
      t.equal(response.statusCode, 404, `${method} ${id}`)
      t.same(Object.keys(response.json()).sort(), ['code', 'error', 'message', 'statusCode'])
      t.equal(response.json().code, 'NOT_FOUND')
    }
  }
  t.same((await mallory('GET', '/lists')).json(), { items: [], nextCursor: null })
  const still = await alice('GET', `/lists/${list.id}`)
  t.same(still.json(), { list }, 'untouched by the probes')
})

t.test('list bodies are validated strictly', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const api = clientFor(app, account)
  const { list } = (await api('POST', '/lists', { title: 'ok' })).json()

  const rejected: Array<[string, 'POST' | 'PATCH', unknown, string]> = [
    ['missing title', 'POST', {}, 'title'],
    ['empty title', 'POST', { title: '' }, 'title'],
    ['title too long', 'POST', { title: 'x'.repeat(201) }, 'title'],
    ['title of emoji too long', 'POST', { title: '😀'.repeat(201) }, 'title'],
    ['title not a string', 'POST', { title: 42 }, 'title'],
    ['title null', 'POST', { title: null }, 'title'],
    ['description too long', 'POST', { title: 'x', description: 'd'.repeat(2001) }, 'description'],
    ['description a number', 'POST', { title: 'x', description: 7 }, 'description'],
    // PostgreSQL text cannot hold NUL, so both databases refuse it alike.
    ['title with NUL', 'POST', { title: 'nul\u0000inside' }, 'title'],
    ['description with NUL', 'POST', { title: 'x', description: 'nul\u0000inside' }, 'description'],
    ['mass assignment of userId', 'POST', { title: 'x', userId: account.userId }, 'userId'],
    ['mass assignment of id', 'POST', { title: 'x', id: 'chosen' }, 'id'],
    ['mass assignment of createdAt', 'POST', { title: 'x', createdAt: '2000-01-01T00:00:00.000Z' }, 'createdAt'],
    ['array body', 'POST', [{ title: 'x' }], 'body'],
    ['PATCH empty title', 'PATCH', { title: '' }, 'title'],
    ['PATCH title null', 'PATCH', { title: null }, 'title'],
    ['PATCH title too long', 'PATCH', { title: 'x'.repeat(201) }, 'title'],
    ['PATCH unknown property', 'PATCH', { title: 'x', userId: 'someone' }, 'userId'],
    ['PATCH description too long', 'PATCH', { description: 'd'.repeat(2001) }, 'description'],
    ['PATCH title with NUL', 'PATCH', { title: '\u0000' }, 'title'],
    ['PATCH description with NUL', 'PATCH', { description: 'nul\u0000inside' }, 'description'],
  ]
  for (const [name, method, payload, field] of rejected) {
    const response = await api(method, method === 'POST' ? '/lists' : `/lists/${list.id}`, payload)
    t.equal(response.statusCode, 400, `${name}: ${response.body}`)
    const body = response.json()
    t.equal(body.code, 'VALIDATION_FAILED', name)
    t.ok(
      body.details.some((detail: { field: string }) => detail.field === field),
      `${name} names ${field}: ${JSON.stringify(body.details)}`,
    )
  }
  t.same((await api('GET', `/lists/${list.id}`)).json().list, list, 'no rejected PATCH changed anything')
  t.same(
    (await api('GET', '/lists?limit=100')).json().items.map((item: { id: string }) => item.id),
    [list.id],
    'no rejected POST created a list',
  )

  const atLimits = await api('POST', '/lists', { title: 'x'.repeat(200), description: 'd'.repeat(2000) })
  t.equal(atLimits.statusCode, 201, 'exactly at the limits')
  const emptyDescription = await api('POST', '/lists', { title: 'x', description: '' })
  t.equal(emptyDescription.json().list.description, '')

  const notJson = await app.inject({
    method: 'POST',
    url: '/lists',
    headers: { ...account.bearer, 'content-type': 'text/plain' },
    payload: 'title=x',
  })
  t.equal(notJson.statusCode, 415)
  t.equal(notJson.json().code, 'UNSUPPORTED_MEDIA_TYPE')

  const longId = await api('GET', `/lists/${'a'.repeat(65)}`)
  t.equal(longId.statusCode, 400)
  t.equal(longId.json().code, 'VALIDATION_FAILED')
})

t.test('unicode and SQL-looking text round-trip byte for byte', async (t) => {
  const { app } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))
  const texts = [
    "Robert'); DROP TABLE lists;--",
    '" OR 1=1 --',
    '%_\\ LIKE escapes',
    'Ünïcödé \u00e9 vs e\u0301 (NFC and NFD stay distinct)',
    '👩‍💻🏳️‍🌈 with ZWJ',
    'עברית RTL \u202e override',
    '中文 日本語 한국어',
    'tab\tnew\nline\r\n',
    'other controls \u0001\u001f\u007f',
    '  leading and trailing spaces  ',
  ]
  for (const text of texts) {
    const created = await api('POST', '/lists', { title: text.slice(0, 200), description: text })
    t.equal(created.statusCode, 201, created.body)
    const { list } = (await api('GET', `/lists/${created.json().list.id}`)).json()
    t.equal(Buffer.compare(Buffer.from(list.description), Buffer.from(text)), 0, JSON.stringify(text))
    t.equal(list.title, text.slice(0, 200))
  }
  // NUL is the one character refused (PostgreSQL text cannot hold it): a 400 naming the field, nothing stored.
  for (const [field, payload] of [
    ['title', { title: 'nul\u0000inside' }],
    ['description', { title: 'nul', description: 'nul\u0000inside' }],
  ] as const) {
    const refused = await api('POST', '/lists', payload)
    t.equal(refused.statusCode, 400, `NUL in the ${field}: ${refused.body}`)
    t.equal(refused.json().code, 'VALIDATION_FAILED')
    t.ok(
      refused.json().details.some((detail: { field: string }) => detail.field === field),
      `the refusal names ${field}: ${refused.body}`,
    )
  }
  const page = (await api('GET', '/lists?limit=100')).json()
  t.equal(page.items.length, texts.length, 'the table survived, and no NUL text was stored')
})

t.test('deleting a list deletes its tasks, and only those', async (t) => {
  const { app } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))
  const doomed = (await api('POST', '/lists', { title: 'doomed' })).json().list
  const kept = (await api('POST', '/lists', { title: 'kept' })).json().list
  const doomedTasks = []
  for (let i = 0; i < 3; i++)
    doomedTasks.push((await api('POST', '/tasks', { title: `d${i}`, listId: doomed.id })).json().task)
  const keptTask = (await api('POST', '/tasks', { title: 'k', listId: kept.id })).json().task
  const looseTask = (await api('POST', '/tasks', { title: 'loose' })).json().task

  t.equal((await api('DELETE', `/lists/${doomed.id}`)).statusCode, 204)
  for (const task of doomedTasks)
    t.equal((await api('GET', `/tasks/${task.id}`)).statusCode, 404, 'task went with its list')
  t.equal((await api('GET', `/tasks/${keptTask.id}`)).statusCode, 200)
  t.equal((await api('GET', `/tasks/${looseTask.id}`)).statusCode, 200)
  const remaining = await app.db
    .selectFrom('tasks')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('list_id', '=', doomed.id)
    .executeTakeFirstOrThrow()
  t.equal(Number(remaining.n), 0, 'no task row points at the deleted list')
  t.same(
    (await api('GET', '/tasks'))
      .json()
      .items.map((task: { id: string }) => task.id)
      .sort(),
    [keptTask.id, looseTask.id].sort(),
  )
})

t.test('cookie-authenticated clients use the same routes, behind the CSRF check', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const cookie = cookieHeader({ access_token: account.cookies.access_token })
  const sameOrigin = { cookie, origin: 'http://localhost:80', host: 'localhost:80' }

  const created = await app.inject({ method: 'POST', url: '/lists', headers: sameOrigin, payload: { title: 'mine' } })
  t.equal(created.statusCode, 201, created.body)
  const { list } = created.json()
  const read = await app.inject({ url: `/lists/${list.id}`, headers: { cookie } })
  t.equal(read.statusCode, 200)

  const crossSite = { cookie, origin: 'https://evil.example', host: 'localhost:80' }
  for (const [method, url, payload] of [
    ['POST', '/lists', { title: 'forged' }],
    ['PATCH', `/lists/${list.id}`, { title: 'forged' }],
    ['DELETE', `/lists/${list.id}`, undefined],
  ] as const) {
    const response = await app.inject({ method, url, headers: crossSite, ...(payload ? { payload } : {}) })
    t.equal(response.statusCode, 403, `${method} ${url}`)
    t.equal(response.json().code, 'CSRF_REJECTED')
  }
  const page = (await app.inject({ url: '/lists', headers: { cookie } })).json()
  t.same(
    page.items.map((item: { title: string }) => item.title),
    ['mine'],
    'no cross-site write went through',
  )
})

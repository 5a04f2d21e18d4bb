import t from 'tap'
import { type Client, clientFor } from './data-helper.js'
import { buildTestApp, signup } from './helper.js'

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

const ids = (page: { items: Array<{ id: string }> }) => page.items.map((item) => item.id).sort()

async function newList(api: Client, title = 'a list'): Promise<string> {
  const response = await api('POST', '/lists', { title })
  if (response.statusCode !== 201) throw new Error(response.body)
  return response.json().list.id
}

t.test('tasks: create, read, change, delete', async (t) => {
  const { app } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))
  const listId = await newList(api)

  const bare = await api('POST', '/tasks', { title: 'Buy milk' })
  t.equal(bare.statusCode, 201, bare.body)
  const { task } = bare.json()
  t.same(Object.keys(task).sort(), ['completed', 'createdAt', 'dueAt', 'id', 'listId', 'notes', 'title', 'updatedAt'])
  t.match(task, { title: 'Buy milk', completed: false, listId: null, dueAt: null, notes: null, createdAt: ISO })

  const full = await api('POST', '/tasks', {
    title: 'File taxes',
    completed: true,
    listId,
    dueAt: '2027-04-15T23:59:00+02:00',
    notes: 'bring receipts',
  })
  t.equal(full.statusCode, 201, full.body)
  t.match(full.json().task, {
    title: 'File taxes',
    completed: true,
    listId,
    dueAt: '2027-04-15T21:59:00.000Z',
    notes: 'bring receipts',
  })

  const read = await api('GET', `/tasks/${task.id}`)
  t.equal(read.statusCode, 200)
  t.same(read.json(), { task })

  // PATCH accepts every POST field, each on its own.
  const patches: Array<[Record<string, unknown>, Record<string, unknown>]> = [
    [{ title: 'Buy oat milk' }, { title: 'Buy oat milk' }],
    [{ completed: true }, { completed: true }],
    [{ completed: false }, { completed: false }],
    [{ listId }, { listId }],
    [{ listId: null }, { listId: null }],
    [{ dueAt: '2027-01-01T09:30:00Z' }, { dueAt: '2027-01-01T09:30:00.000Z' }],
    [{ dueAt: null }, { dueAt: null }],
    [{ notes: 'semi-skimmed' }, { notes: 'semi-skimmed' }],
    [{ notes: null }, { notes: null }],
    [
      { title: 'all at once', completed: true, listId, dueAt: '2030-06-01T00:00:00.5Z', notes: 'n' },
      { title: 'all at once', completed: true, listId, dueAt: '2030-06-01T00:00:00.500Z', notes: 'n' },
    ],
  ]
  for (const [payload, expected] of patches) {
    const response = await api('PATCH', `/tasks/${task.id}`, payload)
    t.equal(response.statusCode, 200, `${JSON.stringify(payload)}: ${response.body}`)
    t.match(response.json().task, { ...expected, id: task.id, createdAt: task.createdAt })
    t.same((await api('GET', `/tasks/${task.id}`)).json(), response.json(), 'stored as answered')
  }
  const before = (await api('GET', `/tasks/${task.id}`)).json()
  const empty = await api('PATCH', `/tasks/${task.id}`, {})
  t.same(empty.json(), before, 'an empty PATCH changes nothing')

  t.equal((await api('DELETE', `/tasks/${task.id}`)).statusCode, 204)
  t.equal((await api('GET', `/tasks/${task.id}`)).statusCode, 404)
  t.equal((await api('DELETE', `/tasks/${task.id}`)).statusCode, 404)
})

t.test("a task's listId must be one of the caller's own lists", async (t) => {
  const { app } = await buildTestApp(t)
  const alice = clientFor(app, await signup(app))
  const bob = clientFor(app, await signup(app))
  const aliceList = await newList(alice)
  const bobList = await newList(bob)
  const deletedList = await newList(alice)
  await alice('DELETE', `/lists/${deletedList}`)
  const { task } = (await alice('POST', '/tasks', { title: 't', listId: aliceList })).json()

  for (const [name, listId] of [
    ["another user's list", bobList],
    ['an unknown id', 'no-such-list'],
    ['a deleted list', deletedList],
  ]) {
    const created = await alice('POST', '/tasks', { title: 'x', listId })
    t.equal(created.statusCode, 400, `POST with ${name}`)
    t.match(created.json(), { code: 'INVALID_LIST', details: [{ field: 'listId' }] })
    const patched = await alice('PATCH', `/tasks/${task.id}`, { listId, title: 'changed?' })
    t.equal(patched.statusCode, 400, `PATCH with ${name}`)
    t.equal(patched.json().code, 'INVALID_LIST')
  }
  t.match((await alice('GET', `/tasks/${task.id}`)).json().task, { listId: aliceList, title: 't' }, 'nothing changed')
  t.same(ids((await alice('GET', '/tasks')).json()), [task.id], 'nothing created')
  t.same((await bob('GET', '/tasks')).json().items, [], "nothing landed in bob's list")

  const detached = await alice('PATCH', `/tasks/${task.id}`, { listId: null })
  t.equal(detached.json().task.listId, null, 'listId null detaches')
  t.same((await alice('GET', `/tasks?listId=${aliceList}`)).json().items, [])

  // 404 wins over INVALID_LIST: a foreign task id reveals nothing about lists either.
  const probe = await bob('PATCH', `/tasks/${task.id}`, { listId: bobList })
  t.equal(probe.statusCode, 404)
})

t.test("another user's task is 404 on every verb and never listed", async (t) => {
  const { app } = await buildTestApp(t)
  const alice = clientFor(app, await signup(app))
  const mallory = clientFor(app, await signup(app))
  const listId = await newList(alice)
  const { task } = (await alice('POST', '/tasks', { title: 'secret plan', listId, notes: 'n' })).json()

  for (const [method, payload] of [
    ['GET', undefined],
    ['PATCH', { completed: true }],
    ['PATCH', { listId: null }],
    ['DELETE', undefined],
  ] as const) {
    const response = await mallory(method, `/tasks/${task.id}`, payload)
    t.equal(response.statusCode, 404, method)
    t.equal(response.json().code, 'NOT_FOUND')
  }
  t.same((await mallory('GET', '/tasks')).json(), { items: [], nextCursor: null })
  t.same((await mallory('GET', `/tasks?listId=${listId}`)).json(), { items: [], nextCursor: null })
  t.same((await alice('GET', `/tasks/${task.id}`)).json(), { task }, 'untouched')
})

t.test('task filters: listId, completed, both', async (t) => {
  const { app } = await buildTestApp(t)
  const alice = clientFor(app, await signup(app))
  const bob = clientFor(app, await signup(app))
  const home = await newList(alice, 'home')
  const work = await newList(alice, 'work')
  const made: Record<string, string> = {}
  for (const [name, listId, completed] of [
    ['home-open', home, false],
    ['home-done', home, true],
    ['work-open', work, false],
    ['work-done', work, true],
    ['loose-open', null, false],
    ['loose-done', null, true],
  ] as const) {
    made[name] = (await alice('POST', '/tasks', { title: name, listId, completed })).json().task.id
  }
  await bob('POST', '/tasks', { title: 'bob-done', completed: true })
  const expect = (...names: string[]) => names.map((name) => made[name] ?? `unknown ${name}`).sort()

  const cases: Array<[string, string[]]> = [
    ['', expect('home-open', 'home-done', 'work-open', 'work-done', 'loose-open', 'loose-done')],
    [`listId=${home}`, expect('home-open', 'home-done')],
    ['completed=true', expect('home-done', 'work-done', 'loose-done')],
    ['completed=false', expect('home-open', 'work-open', 'loose-open')],
    [`listId=${work}&completed=true`, expect('work-done')],
    [`listId=${work}&completed=false`, expect('work-open')],
    ['listId=no-such-list', []],
  ]
  for (const [query, expected] of cases) {
    const response = await alice('GET', `/tasks?${query}`)
    t.equal(response.statusCode, 200, query)
    t.same(ids(response.json()), expected, query || 'no filter')
  }
  for (const query of ['completed=maybe', 'listId=', `listId=${'x'.repeat(65)}`, 'list_id=x', 'userId=x']) {
    const response = await alice('GET', `/tasks?${query}`)
    t.equal(response.statusCode, 400, query)
    t.equal(response.json().code, 'VALIDATION_FAILED', query)
  }
})

t.test('task bodies are validated strictly (no coercion, no unknown properties)', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const api = clientFor(app, account)
  const { task } = (await api('POST', '/tasks', { title: 'ok' })).json()

  const rejected: Array<[string, unknown, string]> = [
    ['missing title', { completed: true }, 'title'],
    ['empty title', { title: '' }, 'title'],
    ['title too long', { title: 'x'.repeat(501) }, 'title'],
    ['completed as a string', { title: 'x', completed: 'true' }, 'completed'],
    ['completed as a number', { title: 'x', completed: 1 }, 'completed'],
    ['completed null', { title: 'x', completed: null }, 'completed'],
    ['listId a number', { title: 'x', listId: 5 }, 'listId'],
    ['listId empty', { title: 'x', listId: '' }, 'listId'],
    ['dueAt not a date', { title: 'x', dueAt: 'tomorrow' }, 'dueAt'],
    ['dueAt a date without time', { title: 'x', dueAt: '2027-01-01' }, 'dueAt'],
    ['dueAt without time zone', { title: 'x', dueAt: '2027-01-01T10:00:00' }, 'dueAt'],
    ['dueAt impossible', { title: 'x', dueAt: '2027-02-30T10:00:00Z' }, 'dueAt'],
    ['dueAt as epoch number', { title: 'x', dueAt: 1767225600000 }, 'dueAt'],
    ['notes too long', { title: 'x', notes: 'n'.repeat(10001) }, 'notes'],
    // PostgreSQL text cannot hold NUL, so both databases refuse it alike.
    ['title with NUL', { title: 'nul\u0000inside' }, 'title'],
    ['notes with NUL', { title: 'x', notes: 'nul\u0000inside' }, 'notes'],
    ['mass assignment of userId', { title: 'x', userId: account.userId }, 'userId'],
    ['mass assignment of createdAt', { title: 'x', createdAt: '2000-01-01T00:00:00Z' }, 'createdAt'],
  ]
  for (const [name, payload, field] of rejected) {
    for (const [method, url] of [
      ['POST', '/tasks'],
      ['PATCH', `/tasks/${task.id}`],
    ] as const) {
      // PATCH has no required title.
      if (method === 'PATCH' && name === 'missing title') continue
      const response = await api(method, url, payload)
      t.equal(response.statusCode, 400, `${method} ${name}: ${response.body}`)
      const body = response.json()
      t.equal(body.code, 'VALIDATION_FAILED')
      t.ok(
        body.details.some((detail: { field: string }) => detail.field === field),
        `${method} ${name} names ${field}: ${JSON.stringify(body.details)}`,
      )
    }
  }
  t.match((await api('GET', `/tasks/${task.id}`)).json().task, { title: 'ok', completed: false, notes: null })
  t.same(ids((await api('GET', '/tasks')).json()), [task.id], 'no rejected POST created a task')

  const atLimits = await api('POST', '/tasks', { title: 't'.repeat(500), notes: 'n'.repeat(10000) })
  t.equal(atLimits.statusCode, 201, 'exactly at the limits')
})

t.test('task text round-trips byte for byte', async (t) => {
  const { app } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))
  const texts = ["'; DELETE FROM tasks WHERE '1'='1", '🧪 e\u0301 \u00e9 \u202e', 'line\nbreak\u0001\u007f controls']
  for (const text of texts) {
    const created = await api('POST', '/tasks', { title: text, notes: text })
    t.equal(created.statusCode, 201, created.body)
    const read = (await api('GET', `/tasks/${created.json().task.id}`)).json().task
    t.equal(Buffer.compare(Buffer.from(read.title), Buffer.from(text)), 0, JSON.stringify(text))
    t.equal(Buffer.compare(Buffer.from(read.notes), Buffer.from(text)), 0, JSON.stringify(text))
  }

  // NUL is the one character refused (PostgreSQL text cannot hold it): a 400 naming the field, nothing stored.
  const nul = 'line\nbreak\u0000nul'
  const { task } = (await api('POST', '/tasks', { title: 'kept', notes: 'kept' })).json()
  for (const [field, payload] of [
    ['title', { title: nul }],
    ['notes', { title: 'fine', notes: nul }],
  ] as const) {
    for (const [method, url] of [
      ['POST', '/tasks'],
      ['PATCH', `/tasks/${task.id}`],
    ] as const) {
      const refused = await api(method, url, payload)
      t.equal(refused.statusCode, 400, `${method} NUL in the ${field}: ${refused.body}`)
      t.equal(refused.json().code, 'VALIDATION_FAILED')
      t.ok(
        refused.json().details.some((detail: { field: string }) => detail.field === field),
        `${method}: the refusal names ${field}: ${refused.body}`,
      )
    }
  }
  t.match(
    (await api('GET', `/tasks/${task.id}`)).json().task,
    { title: 'kept', notes: 'kept' },
    'no PATCH went through',
  )
  t.equal((await api('GET', '/tasks')).json().items.length, texts.length + 1, 'no NUL text created a task')
})

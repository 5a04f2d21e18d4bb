import t from 'tap'
import { createList, listsPageQuery } from '../src/data/lists.js'
import { secretsPageQuery } from '../src/data/secrets.js'
import { tasksPageQuery } from '../src/data/tasks.js'
import { type Client, clientFor, planNodes, postgresPlan, sqlitePlan } from './data-helper.js'
import { buildTestApp, onPostgres, signup } from './helper.js'

interface Item {
  id: string
  createdAt: string
}

const RESOURCES: Array<{ path: string; key: string; body: (n: number) => Record<string, unknown> }> = [
  { path: '/lists', key: 'list', body: (n) => ({ title: `list ${n}` }) },
  { path: '/tasks', key: 'task', body: (n) => ({ title: `task ${n}`, completed: n % 2 === 0 }) },
  { path: '/secrets', key: 'secret', body: (n) => ({ message: `secret ${n}` }) },
]

async function create(api: Client, path: string, key: string, body: Record<string, unknown>): Promise<Item> {
  const response = await api('POST', path, body)
  if (response.statusCode !== 201) throw new Error(response.body)
  return response.json()[key]
}

/** (createdAt desc, id desc): the order every page must follow. */
const newerFirst = (a: Item, b: Item): number =>
  a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1

for (const { path, key, body } of RESOURCES) {
  t.test(`${path}: pages stay stable while rows are inserted`, async (t) => {
    const { app } = await buildTestApp(t)
    const api = clientFor(app, await signup(app))
    const other = clientFor(app, await signup(app))
    const originals: Item[] = []
    for (let n = 0; n < 47; n++) {
      originals.push(await create(api, path, key, body(n)))
      await create(other, path, key, body(n))
    }

    const seen: Item[] = []
    const inserted: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const query: string = cursor === null ? '?limit=10' : `?limit=10&cursor=${cursor}`
      const response = await api('GET', `${path}${query}`)
      t.equal(response.statusCode, 200, `page ${pages + 1}`)
      const page: { items: Item[]; nextCursor: string | null } = response.json()
      t.ok(page.items.length <= 10)
      seen.push(...page.items)
      cursor = page.nextCursor
      pages++
      // Concurrent writers: new rows land between page requests.
      for (let i = 0; i < 2; i++) inserted.push((await create(api, path, key, body(1000 + pages * 10 + i))).id)
    } while (cursor !== null && pages < 20)

    t.equal(pages, 5, '47 rows in pages of 10')
    const seenIds = seen.map((item) => item.id)
    t.equal(new Set(seenIds).size, seenIds.length, 'no duplicates')
    const expected = [...originals].sort(newerFirst).map((item) => item.id)
    t.same(
      seenIds.filter((id) => !inserted.includes(id)),
      expected,
      'every original row, once, newest first (no gaps)',
    )
    t.same([...seen].sort(newerFirst), seen, 'pages are in (createdAt desc, id desc) order')

    const first = (await api('GET', path)).json()
    t.equal(first.items.length, 20, 'default limit is 20')
    t.type(first.nextCursor, 'string')
    const all = (await api('GET', `${path}?limit=100`)).json()
    t.equal(all.items.length, 47 + inserted.length)
    t.equal(all.nextCursor, null, 'no cursor on the last page')
    const exact = (await api('GET', `${path}?limit=${all.items.length}`)).json()
    t.equal(exact.nextCursor, null, 'a last page that is exactly full has no cursor either')
  })
}

t.test('rows created in the same millisecond are ordered and paged by id', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const api = clientFor(app, account)
  const at = app.clock.now() - 60_000
  const created: Item[] = []
  for (let n = 0; n < 25; n++) created.push(await createList(app.db, account.userId, { title: `tie ${n}` }, at))
  const newest = await createList(app.db, account.userId, { title: 'newest' }, at + 1)
  const oldest = await createList(app.db, account.userId, { title: 'oldest' }, at - 1)

  const seen: string[] = []
  let cursor: string | null = null
  do {
    const query: string = cursor === null ? '?limit=4' : `?limit=4&cursor=${cursor}`
    const page: { items: Item[]; nextCursor: string | null } = (await api('GET', `/lists${query}`)).json()
    seen.push(...page.items.map((item) => item.id))
    cursor = page.nextCursor
  } while (cursor !== null && seen.length < 100)
  const ties = created.map((item) => item.id).sort((a, b) => (a < b ? 1 : -1))
  t.same(seen, [newest.id, ...ties, oldest.id], 'ties broken by id, descending, across page boundaries')
})

t.test('limits outside 1..100 are refused', async (t) => {
  const { app } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))
  for (const { path } of RESOURCES) {
    for (const limit of ['0', '101', '-1', '2.5', 'ten', '']) {
      const response = await api('GET', `${path}?limit=${limit}`)
      t.equal(response.statusCode, 400, `${path}?limit=${limit}`)
      t.equal(response.json().code, 'VALIDATION_FAILED')
    }
    for (const limit of ['1', '100']) t.equal((await api('GET', `${path}?limit=${limit}`)).statusCode, 200)
  }
})

t.test('tampered, forged or foreign cursors are 400, never a 500', async (t) => {
  const { app } = await buildTestApp(t)
  const alice = clientFor(app, await signup(app))
  const bob = clientFor(app, await signup(app))
  const aliceList = (await alice('POST', '/lists', { title: 'l' })).json().list.id
  for (let n = 0; n < 3; n++) {
    for (const api of [alice, bob]) {
      await api('POST', '/lists', { title: `l${n}` })
      await api('POST', '/tasks', { title: `t${n}`, completed: true, listId: api === alice ? aliceList : null })
      await api('POST', '/secrets', { message: `s${n}` })
    }
  }
  const cursorOf = async (api: Client, url: string): Promise<string> => {
    const cursor = (await api('GET', url)).json().nextCursor
    if (typeof cursor !== 'string') throw new Error(`no cursor for ${url}`)
    return cursor
  }
  const lists = await cursorOf(alice, '/lists?limit=1')
  const tasks = await cursorOf(alice, '/tasks?limit=1')
  const completedTasks = await cursorOf(alice, '/tasks?limit=1&completed=true')
  const secrets = await cursorOf(alice, '/secrets?limit=1')
  const bobLists = await cursorOf(bob, '/lists?limit=1')

  const bytes = Buffer.from(lists, 'base64url')
  const edited = (edit: (copy: Buffer) => void) => {
    const copy = Buffer.from(bytes)
    edit(copy)
    return copy.toString('base64url')
  }
  const flipAt = (index: number) =>
    edited((copy) => {
      copy[index] = (copy[index] ?? 0) ^ 0x01
    })

  t.equal((await alice('GET', `/lists?limit=1&cursor=${lists}`)).statusCode, 200, 'the genuine cursor works')

  const cases: Array<[string, string]> = [
    ['garbled text', '/lists?cursor=not-a-cursor'],
    ['non-base64url characters', `/lists?cursor=${encodeURIComponent(`${lists.slice(0, -2)}!*`)}`],
    ['standard base64 padding', `/lists?cursor=${encodeURIComponent(`${lists}==`)}`],
    ['truncated', `/lists?cursor=${lists.slice(0, -4)}`],
    ['extended', `/lists?cursor=${lists}AAAA`],
    ['empty', '/lists?cursor='],
    ['too long', `/lists?cursor=${'A'.repeat(201)}`],
    ['a number', '/lists?cursor=12345'],
    ['JSON', `/lists?cursor=${encodeURIComponent('{"createdAt":0,"id":"x"}')}`],
    ['base64url of JSON', `/lists?cursor=${Buffer.from('{"createdAt":0,"id":"x"}').toString('base64url')}`],
    ['given twice', `/lists?cursor=${lists}&cursor=${lists}`],
    ['forged version byte', `/lists?cursor=${flipAt(0)}`],
    ['forged timestamp', `/lists?cursor=${flipAt(6)}`],
    ['forged id', `/lists?cursor=${flipAt(10)}`],
    ['forged tag', `/lists?cursor=${flipAt(bytes.length - 1)}`],
    ['a tasks cursor on /lists', `/lists?cursor=${tasks}`],
    ['a lists cursor on /secrets', `/secrets?cursor=${lists}`],
    ['a secrets cursor on /tasks', `/tasks?cursor=${secrets}`],
    ["another user's cursor", `/lists?cursor=${bobLists}`],
    ['a cursor of other filters', `/tasks?completed=false&cursor=${completedTasks}`],
    ['a filtered cursor without its filter', `/tasks?cursor=${completedTasks}`],
    ['an unfiltered cursor with a filter', `/tasks?listId=${aliceList}&cursor=${tasks}`],
  ]
  for (const [name, url] of cases) {
    const response = await alice('GET', url)
    t.equal(response.statusCode, 400, `${name}: ${response.body}`)
    t.match(response.json().code, /^(INVALID_CURSOR|VALIDATION_FAILED)$/, name)
    t.ok(
      response.json().details?.some((detail: { field: string }) => detail.field === 'cursor'),
      `${name} names the cursor`,
    )
  }
  t.equal((await alice('GET', `/tasks?completed=true&cursor=${completedTasks}`)).statusCode, 200, 'same filters work')
})

t.test('every page query is an ordered index range scan', async (t) => {
  const { app } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))
  const listId = (await api('POST', '/lists', { title: 'l' })).json().list.id
  for (let n = 0; n < 5; n++) {
    await api('POST', '/tasks', { title: `t${n}`, listId, completed: n % 2 === 0 })
    await api('POST', '/secrets', { message: `s${n}` })
  }
  const { db } = app
  const after = { createdAt: app.clock.now(), id: 'ffffffff-ffff-4fff-8fff-ffffffffffff' }
  const user = 'some-user'

  const queries: Array<[string, string, { sql: string; parameters: readonly unknown[] }]> = []
  for (const [cursorName, position] of [
    ['first page', undefined],
    ['after a cursor', after],
  ] as const) {
    queries.push([`lists, ${cursorName}`, 'lists_user_page', listsPageQuery(db, user, 20, position).compile()])
    queries.push([`secrets, ${cursorName}`, 'secrets_user_page', secretsPageQuery(db, user, 20, position).compile()])
    for (const [filterName, filters, index] of [
      ['no filter', {}, 'tasks_user_page'],
      ['listId', { listId }, 'tasks_user_list_page'],
      ['completed', { completed: true }, 'tasks_user_completed_page'],
      ['listId and completed', { listId, completed: false }, 'tasks_user_list_completed_page'],
    ] as const) {
      queries.push([
        `tasks by ${filterName}, ${cursorName}`,
        index,
        tasksPageQuery(db, user, filters, 20, position).compile(),
      ])
    }
  }
  t.equal(queries.length, 12)
  for (const [name, index, compiled] of queries) {
    if (onPostgres) {
      const nodes = planNodes(await postgresPlan(app, compiled))
      const text = nodes
        .map((node) =>
          [node['Node Type'], node['Index Name'], node['Index Cond'], node.Filter && `Filter: ${node.Filter}`]
            .filter(Boolean)
            .join(' '),
        )
        .join(' | ')
      t.notOk(
        nodes.some((node) => node['Node Type'] === 'Seq Scan'),
        `${name}: no full scan (${text})`,
      )
      t.notOk(
        nodes.some((node) => /Sort/.test(node['Node Type'])),
        `${name}: no sort step (${text})`,
      )
      const scans = nodes.filter((node) => /^Index (Only )?Scan$/.test(node['Node Type']))
      t.equal(scans.length, 1, `${name}: one index scan (${text})`)
      const scan = scans[0]
      t.equal(scan?.['Index Name'], index, `${name}: ${text}`)
      t.equal(scan?.['Scan Direction'], 'Backward', `${name}: read newest first straight from the index (${text})`)
      t.match(scan?.['Index Cond'], /^\(+user_id = /, `${name}: the index range starts at the user (${text})`)
      t.notOk(scan?.Filter, `${name}: every condition bounds the index range, none filters rows after (${text})`)
      if (name.includes('cursor'))
        t.match(scan?.['Index Cond'], /ROW\(created_at, id\) < ROW\(/, `${name}: the cursor bounds the range (${text})`)
    } else {
      const plan = await sqlitePlan(app, compiled)
      const text = plan.join(' | ')
      t.notOk(
        plan.some((detail) => /^SCAN /.test(detail)),
        `${name}: no full scan (${text})`,
      )
      t.notOk(/TEMP B-TREE/.test(text), `${name}: no sort step (${text})`)
      t.match(text, new RegExp(`^SEARCH \\w+ USING (COVERING )?INDEX ${index} \\(user_id=\\?`), `${name}: ${text}`)
      if (name.includes('cursor')) t.match(text, /\(created_at,id\)<\(\?,\?\)/, `${name}: the cursor bounds the range`)
    }
  }
})

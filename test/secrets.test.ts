import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import t from 'tap'
import { clientFor, sqliteFile } from './data-helper.js'
import { buildTestApp, onPostgres, signup } from './helper.js'

interface SecretRowBytes {
  id: string
  key_id: string
  nonce: Buffer
  ciphertext: Buffer
}

/** The stored row of a secret, read behind the API (the same on both databases). */
async function secretRow(app: FastifyInstance, id: string): Promise<SecretRowBytes> {
  const row = await app.db
    .selectFrom('secrets')
    .select(['id', 'key_id', 'nonce', 'ciphertext'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow()
  return { ...row, nonce: Buffer.from(row.nonce), ciphertext: Buffer.from(row.ciphertext) }
}

/** Overwrites a secret's stored bytes behind the API, as someone with write access to the database could. */
async function writeSecretRow(app: FastifyInstance, row: SecretRowBytes): Promise<void> {
  await app.db
    .updateTable('secrets')
    .set({ key_id: row.key_id, nonce: row.nonce, ciphertext: row.ciphertext })
    .where('id', '=', row.id)
    .execute()
}

/** Every value of every column of every table of the app's database, as bytes (text as UTF-8), by table. */
async function everyStoredValue(app: FastifyInstance): Promise<Map<string, Buffer[]>> {
  const names =
    app.database.kind === 'postgres'
      ? await sql<{ name: string }>`
          select table_name as name from information_schema.tables
          where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(app.db)
      : await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(app.db)
  const values = new Map<string, Buffer[]>()
  for (const { name } of names.rows) {
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(name)}`.execute(app.db)
    const bytes: Buffer[] = []
    for (const row of rows.rows) {
      for (const value of Object.values(row)) {
        if (typeof value === 'string') bytes.push(Buffer.from(value, 'utf8'))
        else if (value instanceof Uint8Array) bytes.push(Buffer.from(value))
      }
    }
    values.set(name, bytes)
  }
  return values
}

t.test('secrets: create, read, change, delete', async (t) => {
  const { app } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))

  const created = await api('POST', '/secrets', { message: 'the eagle lands at dawn', title: 'Ops' })
  t.equal(created.statusCode, 201, created.body)
  const { secret } = created.json()
  t.same(Object.keys(secret).sort(), ['createdAt', 'id', 'message', 'title', 'updatedAt'])
  t.match(secret, { title: 'Ops', message: 'the eagle lands at dawn' })

  const untitled = (await api('POST', '/secrets', { message: 'no title' })).json().secret
  t.equal(untitled.title, null, 'absent title is null')

  t.same((await api('GET', `/secrets/${secret.id}`)).json(), { secret })

  const patches: Array<[Record<string, unknown>, Record<string, unknown>]> = [
    [{ message: 'moved to dusk' }, { title: 'Ops', message: 'moved to dusk' }],
    [{ title: 'Ops 2' }, { title: 'Ops 2', message: 'moved to dusk' }],
    [{ title: null }, { title: null, message: 'moved to dusk' }],
    [
      { title: 'both', message: 'both changed' },
      { title: 'both', message: 'both changed' },
    ],
    [{}, { title: 'both', message: 'both changed' }],
  ]
  for (const [payload, expected] of patches) {
    const response = await api('PATCH', `/secrets/${secret.id}`, payload)
    t.equal(response.statusCode, 200, `${JSON.stringify(payload)}: ${response.body}`)
    t.match(response.json().secret, { ...expected, id: secret.id, createdAt: secret.createdAt })
    t.same((await api('GET', `/secrets/${secret.id}`)).json(), response.json(), 'stored as answered')
  }

  const page = (await api('GET', '/secrets')).json()
  t.same(
    page.items.map((item: { message: string }) => item.message),
    ['no title', 'both changed'],
    'the page is decrypted, newest first',
  )

  t.equal((await api('DELETE', `/secrets/${secret.id}`)).statusCode, 204)
  t.equal((await api('GET', `/secrets/${secret.id}`)).statusCode, 404)
})

t.test("another user's secret is 404 on every verb and never listed", async (t) => {
  const { app } = await buildTestApp(t)
  const alice = clientFor(app, await signup(app))
  const mallory = clientFor(app, await signup(app))
  const { secret } = (await alice('POST', '/secrets', { message: 'alice only', title: 't' })).json()
  for (const [method, payload] of [
    ['GET', undefined],
    ['PATCH', { message: 'overwritten' }],
    ['PATCH', {}],
    ['DELETE', undefined],
  ] as const) {
    for (const id of [secret.id, 'unknown']) {
      const response = await mallory(method, `/secrets/${id}`, payload)
      t.equal(response.statusCode, 404, `${method} ${id}`)
      t.equal(response.json().code, 'NOT_FOUND')
    }
  }
  t.same((await mallory('GET', '/secrets')).json(), { items: [], nextCursor: null })
  t.same((await alice('GET', `/secrets/${secret.id}`)).json(), { secret }, 'untouched')
})

t.test('secret bodies are validated strictly', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const api = clientFor(app, account)
  const { secret } = (await api('POST', '/secrets', { message: 'm' })).json()
  const rejected: Array<[string, 'POST' | 'PATCH', unknown, string]> = [
    ['missing message', 'POST', { title: 't' }, 'message'],
    ['empty message', 'POST', { message: '' }, 'message'],
    ['message too long', 'POST', { message: 'm'.repeat(10001) }, 'message'],
    ['message a number', 'POST', { message: 12345 }, 'message'],
    ['title too long', 'POST', { message: 'm', title: 't'.repeat(201) }, 'title'],
    ['mass assignment of userId', 'POST', { message: 'm', userId: account.userId }, 'userId'],
    ['ciphertext smuggled in', 'POST', { message: 'm', ciphertext: 'AAAA' }, 'ciphertext'],
    ['PATCH empty message', 'PATCH', { message: '' }, 'message'],
    ['PATCH message null', 'PATCH', { message: null }, 'message'],
    ['PATCH unknown property', 'PATCH', { keyId: 'x' }, 'keyId'],
  ]
  for (const [name, method, payload, field] of rejected) {
    const response = await api(method, method === 'POST' ? '/secrets' : `/secrets/${secret.id}`, payload)
    t.equal(response.statusCode, 400, `${name}: ${response.body}`)
    t.equal(response.json().code, 'VALIDATION_FAILED')
    t.ok(
      response.json().details.some((detail: { field: string }) => detail.field === field),
      `${name} names ${field}`,
    )
  }
  const atLimits = await api('POST', '/secrets', { message: 'm'.repeat(10000), title: 't'.repeat(200) })
  t.equal(atLimits.statusCode, 201, 'exactly at the limits')
  const text = "é e\u0301 🔐 '); DROP TABLE secrets;-- \u0000"
  const { secret: odd } = (await api('POST', '/secrets', { message: text, title: text })).json()
  const read = (await api('GET', `/secrets/${odd.id}`)).json().secret
  t.equal(Buffer.compare(Buffer.from(read.message), Buffer.from(text)), 0, 'round-trips byte for byte')
  t.equal(read.title, text)
})

t.test('the database never holds a secret in clear text: not in any row, nor (SQLite) in its files', async (t) => {
  const { app, config } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))
  const message = 'zebra-7f3c-distinctive-secret-message'
  const title = 'okapi-91ab-distinctive-secret-title'
  const control = 'narwhal-55de-distinctive-list-title'
  const { secret } = (await api('POST', '/secrets', { message, title })).json()
  await api('PATCH', `/secrets/${secret.id}`, { message: `${message} v2` })
  await api('POST', '/secrets', { message: `${message} again` })
  // A list title is stored in clear: finding it proves the data is read where it is stored.
  await api('POST', '/lists', { title: control })
  const needles = [message, title, 'zebra-7f3c', 'okapi-91ab']

  // Every column of every table, text and binary alike, as the database returns it.
  const stored = await everyStoredValue(app)
  t.same(
    ['lists', 'secrets', 'sessions', 'tasks', 'users'].filter((table) => !stored.has(table)),
    [],
    'every table was read',
  )
  const secretsBytes = stored.get('secrets') ?? []
  t.ok(
    (await app.db.selectFrom('secrets').select(['nonce', 'ciphertext']).execute()).every(
      (row) =>
        secretsBytes.some((bytes) => bytes.equals(Buffer.from(row.ciphertext))) &&
        secretsBytes.some((bytes) => bytes.equals(Buffer.from(row.nonce))),
    ),
    'the raw nonce and ciphertext bytes of both secrets were read',
  )
  const rows = Buffer.concat([...stored.values()].flat())
  t.ok(rows.includes(Buffer.from(control)), 'control: plain text is found in the rows')
  for (const needle of needles) {
    for (const encoding of ['utf8', 'utf16le'] as const) {
      t.notOk(rows.includes(Buffer.from(needle, encoding)), `${needle} (${encoding}) is in no row`)
    }
  }

  if (!onPostgres) {
    // The file may hold more than the live rows (free pages, the WAL's older page versions).
    const file = sqliteFile(config)
    const files = [file, `${file}-wal`].map((name) => readFileSync(name))
    const everything = Buffer.concat(files)
    t.ok(files[1] && files[1].length > 0, 'the WAL holds the recent writes')
    t.ok(everything.includes(Buffer.from(control)), 'control: plain text is found in the files')
    for (const needle of needles) {
      for (const encoding of ['utf8', 'utf16le'] as const) {
        t.notOk(everything.includes(Buffer.from(needle, encoding)), `${needle} (${encoding}) is not in the files`)
      }
    }
  }
  t.equal((await api('GET', `/secrets/${secret.id}`)).json().secret.message, `${message} v2`)
})

t.test('each write uses a fresh nonce and records the key id', async (t) => {
  const { app } = await buildTestApp(t)
  const api = clientFor(app, await signup(app))
  const rowOf = (id: string) => secretRow(app, id)
  const first = (await api('POST', '/secrets', { message: 'same words' })).json().secret
  const second = (await api('POST', '/secrets', { message: 'same words' })).json().secret
  const a = await rowOf(first.id)
  const b = await rowOf(second.id)
  t.equal(a.nonce.length, 12)
  t.equal(a.ciphertext.length, Buffer.byteLength(JSON.stringify({ title: null, message: 'same words' })) + 16)
  t.notSame(a.nonce, b.nonce)
  t.notSame(a.ciphertext, b.ciphertext)
  t.equal(a.key_id, app.keys.dataEncryptionKeyId)
  await api('PATCH', `/secrets/${first.id}`, { message: 'same words' })
  t.notSame((await rowOf(first.id)).nonce, a.nonce, 'an update seals under a new nonce')
})

t.test('a tampered or moved ciphertext is a 500 without details, never garbage', async (t) => {
  const { app } = await buildTestApp(t)
  const alice = clientFor(app, await signup(app))
  const bob = clientFor(app, await signup(app))
  // Tampering goes through an UPDATE on the app's own connection: the same on SQLite and PostgreSQL.
  const rowOf = (id: string) => secretRow(app, id)

  const flip = (bytes: Buffer, index: number) => {
    const copy = Buffer.from(bytes)
    const at = index < 0 ? copy.length + index : index
    copy[at] = (copy[at] ?? 0) ^ 0x01
    return copy
  }

  type Tamper = (victim: SecretRowBytes, donors: { alice: SecretRowBytes; bob: SecretRowBytes }) => SecretRowBytes
  const cases: Array<[string, Tamper]> = [
    ['ciphertext copied from another row of the same user', (v, d) => ({ ...d.alice, id: v.id })],
    ["ciphertext copied from another user's row", (v, d) => ({ ...d.bob, id: v.id })],
    ['first ciphertext byte flipped', (v) => ({ ...v, ciphertext: flip(v.ciphertext, 0) })],
    ['last tag byte flipped', (v) => ({ ...v, ciphertext: flip(v.ciphertext, -1) })],
    ['nonce byte flipped', (v) => ({ ...v, nonce: flip(v.nonce, 5) })],
    ['ciphertext truncated', (v) => ({ ...v, ciphertext: v.ciphertext.subarray(0, 10) })],
    ['unknown key id', (v) => ({ ...v, key_id: 'feedfacefeedface' })],
  ]
  const donors = {
    alice: await rowOf((await alice('POST', '/secrets', { message: 'donor of alice' })).json().secret.id),
    bob: await rowOf((await bob('POST', '/secrets', { message: 'donor of bob' })).json().secret.id),
  }
  for (const [name, tamper] of cases) {
    const { secret } = (await alice('POST', '/secrets', { message: `victim: ${name}`, title: 'v' })).json()
    t.equal((await alice('GET', `/secrets/${secret.id}`)).statusCode, 200, `${name}: readable before`)
    const tampered = tamper(await rowOf(secret.id), donors)
    await writeSecretRow(app, tampered)
    t.same(await rowOf(secret.id), tampered, `${name}: the tampered bytes are stored`)

    for (const [method, url, payload] of [
      ['GET', `/secrets/${secret.id}`, undefined],
      ['PATCH', `/secrets/${secret.id}`, { title: 'rewrap?' }],
      ['GET', '/secrets?limit=100', undefined],
    ] as const) {
      const response = await alice(method, url, payload)
      t.equal(response.statusCode, 500, `${name}: ${method} ${url}`)
      t.same(response.json(), {
        statusCode: 500,
        code: 'INTERNAL_ERROR',
        error: 'Internal Server Error',
        message: 'Internal server error',
      })
      t.notMatch(response.body, /donor|victim|auth|decrypt|key/i, 'nothing leaks')
    }
    t.same(await rowOf(secret.id), tampered, 'a failed PATCH wrote nothing')
    t.equal((await alice('DELETE', `/secrets/${secret.id}`)).statusCode, 204, 'a broken secret can still be deleted')
  }
  t.equal((await alice('GET', '/secrets')).statusCode, 200, 'the page is readable again')
  t.equal((await alice('GET', `/secrets/${donors.alice.id}`)).json().secret.message, 'donor of alice')
})

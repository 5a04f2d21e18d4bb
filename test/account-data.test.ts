import t from 'tap'
import { clientFor } from './data-helper.js'
import { buildTestApp, confirmPassword, signup } from './helper.js'

t.test("deleting the account deletes all its lists, tasks and secrets, and nobody else's", async (t) => {
  const { app } = await buildTestApp(t)
  const leaving = await signup(app)
  const staying = await signup(app)
  for (const account of [leaving, staying]) {
    const api = clientFor(app, account)
    for (let n = 0; n < 3; n++) {
      const listId = (await api('POST', '/lists', { title: `list ${n}` })).json().list.id
      await api('POST', '/tasks', { title: `in list ${n}`, listId })
      await api('POST', '/tasks', { title: `loose ${n}` })
      await api('POST', '/secrets', { message: `secret ${n}` })
    }
  }
  const count = async (table: 'lists' | 'tasks' | 'secrets', userId: string): Promise<number> => {
    const row = await app.db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll().as('n'))
      .where('user_id', '=', userId)
      .executeTakeFirstOrThrow()
    return Number(row.n)
  }
  const expected = { lists: 3, tasks: 6, secrets: 3 } as const
  const tables = Object.keys(expected) as Array<keyof typeof expected>
  for (const table of tables) t.equal(await count(table, leaving.userId), expected[table], `${table} exist before`)

  const confirmation = await confirmPassword(app, leaving)
  const deleted = await app.inject({
    method: 'DELETE',
    url: '/users/me',
    headers: { ...leaving.bearer, 'x-password-confirmation': confirmation },
  })
  t.equal(deleted.statusCode, 204, deleted.body)

  for (const table of tables) {
    t.equal(await count(table, leaving.userId), 0, `${table} of the deleted user are gone`)
    t.equal(await count(table, staying.userId), expected[table], `${table} of the other user remain`)
  }
  const others = clientFor(app, staying)
  t.equal((await others('GET', '/tasks')).json().items.length, 6)
  t.equal((await others('GET', '/secrets')).json().items.length, 3, "the other user's secrets still decrypt")
})

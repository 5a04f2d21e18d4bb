import t from 'tap'
import { clientFor, openDatabase } from './data-helper.js'
import { buildTestApp, confirmPassword, signup } from './helper.js'

t.test("deleting the account deletes all its lists, tasks and secrets, and nobody else's", async (t) => {
  const { app, config } = await buildTestApp(t)
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
  const db = openDatabase(t, config.databaseFile)
  const count = (table: string, userId: string) =>
    (db.prepare(`select count(*) as n from ${table} where user_id = ?`).get(userId) as { n: number }).n
  const expected = { lists: 3, tasks: 6, secrets: 3 }
  for (const [table, n] of Object.entries(expected)) t.equal(count(table, leaving.userId), n, `${table} exist before`)

  const confirmation = await confirmPassword(app, leaving)
  const deleted = await app.inject({
    method: 'DELETE',
    url: '/users/me',
    headers: { ...leaving.bearer, 'x-password-confirmation': confirmation },
  })
  t.equal(deleted.statusCode, 204, deleted.body)

  for (const [table, n] of Object.entries(expected)) {
    t.equal(count(table, leaving.userId), 0, `${table} of the deleted user are gone`)
    t.equal(count(table, staying.userId), n, `${table} of the other user remain`)
  }
  const others = clientFor(app, staying)
  t.equal((await others('GET', '/tasks')).json().items.length, 6)
  t.equal((await others('GET', '/secrets')).json().items.length, 3, "the other user's secrets still decrypt")
})

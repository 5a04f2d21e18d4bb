import t from 'tap'
import { buildTestApp } from './helper.js'

t.test('/health answers while the process is up; /ready follows the database', async (t) => {
  const { app } = await buildTestApp(t)
  t.same((await app.inject('/health')).json(), { status: 'ok' })
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready' })
  // The app's own handle: the SQLite connection or the whole PostgreSQL pool.
  await app.database.close()
  t.equal(await app.database.ping(), false, 'a closed database does not answer')
  const down = await app.inject('/ready')
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'SERVICE_UNAVAILABLE')
  t.equal((await app.inject('/health')).statusCode, 200, 'liveness does not depend on the database')
})

t.test('/ready is 503 when queries fail, not only when the handle was closed', async (t) => {
  const { app } = await buildTestApp(t)
  t.equal((await app.inject('/ready')).statusCode, 200)
  // Destroys the connection (SQLite) or pool (PostgreSQL) under the handle, which still thinks it is open.
  await app.db.destroy()
  const down = await app.inject('/ready')
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'SERVICE_UNAVAILABLE')
})

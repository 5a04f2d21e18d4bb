import t from 'tap'
import { buildTestApp } from './helper.js'

t.test('/health answers while the process is up; /ready follows the database', async (t) => {
  const { app } = await buildTestApp(t)
  t.same((await app.inject('/health')).json(), { status: 'ok' })
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 200)
  await app.store.close()
  const down = await app.inject('/ready')
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'SERVICE_UNAVAILABLE')
  t.equal((await app.inject('/health')).statusCode, 200, 'liveness does not depend on the database')
})

import t from 'tap'
import { buildTestApp, signup } from './helper.js'

t.test('smoke', async (t) => {
  const { app } = await buildTestApp(t)
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200, health.body)
  const account = await signup(app)
  const me = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(me.statusCode, 200, me.body)
  t.same(Object.keys(account.cookies).sort(), ['access_token', 'refresh_token'])
  console.log(app.printRoutes({ commonPrefix: false }))
})

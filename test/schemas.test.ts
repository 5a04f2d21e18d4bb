// Validators and serializers are compiled on a route's first use, so a broken
// schema would only show on the first request to its route. Here every route's
// schemas are compiled up front, with the app's own compilers.
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import Fastify, { type RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import t from 'tap'
import latchkey, { serverOptions, validatorCompilers } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { TEST_ENV, tempDir } from './helper.js'

t.test('every route schema compiles', async (t) => {
  const dir = tempDir(t)
  const config = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV }, cwd: dir })
  const app = Fastify(serverOptions(config))
  const routes: RouteOptions[] = []
  app.addHook('onRoute', (route) => {
    routes.push(route)
  })
  await app.register(fp(latchkey), { config })
  await app.ready()
  t.teardown(() => app.close())

  const compileValidator = validatorCompilers()
  const compileSerializer = SerializerSelector()(undefined, undefined)
  let validators = 0
  let serializers = 0
  for (const route of routes) {
    const schema = (route.schema ?? {}) as Record<string, unknown>
    const name = `${route.method} ${route.url}`
    for (const httpPart of ['body', 'querystring', 'params', 'headers']) {
      const partSchema = schema[httpPart] as object | undefined
      if (!partSchema) continue
      // The first call compiles; the value validated does not matter here.
      t.doesNotThrow(() => compileValidator({ schema: partSchema, httpPart })(null), `${name} ${httpPart}`)
      validators++
    }
    for (const [httpStatus, responseSchema] of Object.entries((schema.response ?? {}) as Record<string, object>)) {
      t.doesNotThrow(
        () => compileSerializer({ schema: responseSchema, method: String(route.method), url: route.url, httpStatus }),
        `${name} ${httpStatus}`,
      )
      serializers++
    }
  }
  t.ok(validators >= 25, `${validators} validators`)
  t.ok(serializers >= 100, `${serializers} serializers`)
})

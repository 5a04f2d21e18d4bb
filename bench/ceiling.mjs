// The ceiling: a bare Fastify server with one JSON route, no plugins, no logger.
// Measured beside latchkey in the same run, on the same machine and load.
import Fastify from 'fastify'

const app = Fastify()
app.get('/', async () => ({ hello: 'world' }))
process.once('SIGTERM', () => app.close().then(() => process.exit(0)))
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })

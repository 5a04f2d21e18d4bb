// The cold-start reference: a bare node:http server answering GET /health.
import http from 'node:http'

const server = http.createServer((request, response) => {
  if (request.url === '/health') {
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end('{"status":"ok"}')
  } else {
    response.writeHead(404).end()
  }
})
process.once('SIGTERM', () => server.close(() => process.exit(0)))
server.listen(Number(process.env.PORT), '127.0.0.1')

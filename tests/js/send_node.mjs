// Sends calls through the real @segment/analytics-node SDK to a running Mainstem.
//
//   node send_node.mjs <host> <writeKey> [flushAt] < calls.json
//
// calls.json is a JSON list of {"method": "track" | "identify" | ..., "params": {...}}; the
// params are passed to the SDK method unchanged, except that a string `timestamp` becomes a Date
// (what an application would pass). On success it prints one JSON document to stdout:
//   {"delivered": [<event as the SDK built it>...], "requests": [...], "responses": [...]}
// and exits 0. It exits non-zero on any 'error' event, any HTTP answer other than 200, or when
// closeAndFlush does not finish in time.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, flushAtArg] = process.argv.slice(2)
if (!host || !writeKey) {
  console.error('usage: node send_node.mjs <host> <writeKey> [flushAt] < calls.json')
  process.exit(2)
}

const readStdin = async () => {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

const calls = JSON.parse(await readStdin())
const analytics = new Analytics({
  writeKey,
  host,
  flushAt: Number(flushAtArg ?? 1),
  maxRetries: 2,
  httpRequestTimeout: 10000,
})

const errors = []
const delivered = []
const requests = []
const responses = []
analytics.on('error', (err) => {
  errors.push({ code: err.code, reason: String(err.reason?.message ?? err.reason) })
})
analytics.on('http_request', (req) => {
  requests.push({ url: req.url, method: req.method, headers: req.headers, body: JSON.parse(req.body) })
})
analytics.on('http_response', (res) => {
  responses.push({ url: res.url, status: res.status, headers: res.headers })
})
for (const type of ['identify', 'track', 'page', 'screen', 'group', 'alias']) {
  analytics.on(type, (ctx) => delivered.push(ctx.event))
}

for (const { method, params } of calls) {
  const args = { ...params }
  if (typeof args.timestamp === 'string') args.timestamp = new Date(args.timestamp)
  analytics[method](args)
}

await analytics.closeAndFlush({ timeout: 20000 })

const bad = responses.filter((res) => res.status !== 200)
const report = { delivered, requests, responses, errors }
process.stdout.write(JSON.stringify(report) + '\n')
if (errors.length || bad.length || delivered.length !== calls.length) {
  console.error(
    `analytics-node: ${errors.length} error(s), ${bad.length} non-200 answer(s), ` +
      `${delivered.length}/${calls.length} delivered: ${JSON.stringify({ errors, bad })}`,
  )
  process.exit(1)
}

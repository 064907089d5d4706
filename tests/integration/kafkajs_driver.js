// Drives kafkajs 2.2.4 for test_kafkajs.py: reads one JSON command on stdin, runs it against the
// broker in argv[2] and prints one JSON result on stdout (errors: {"error": name, "message"}).
//
// Bytes travel as base64 strings, null stays null. Headers travel as [key, value] pairs.
//
// kafkajs has no assign(): its consumer only works through a consumer group, and chronik does
// not serve the group APIs yet. Reads therefore go through kafkajs's own cluster and broker
// layer (the code its consumer runs underneath: the same Fetch and ListOffsets encoders and
// record batch decoders), fetching one partition from an explicit offset.
'use strict'

const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')

// gzip is built into kafkajs; snappy comes from kafkajs-snappy. lz4 and zstd need codec
// packages with native add-ons, which this suite does not build, so kafkajs tests only these.
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy }

const TIMEOUT_MS = 30000

const unb64 = s => (s === null ? null : Buffer.from(s, 'base64'))
const b64 = b => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'))

function kafkaFor(broker) {
  return new Kafka({
    clientId: 'chronik-it',
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    requestTimeout: TIMEOUT_MS,
    retry: { retries: 3, initialRetryTime: 100 },
  })
}

// kafkajs encodes repeated header keys as arrays under one key.
function headersIn(pairs) {
  const obj = {}
  for (const [k, v] of pairs) {
    const value = unb64(v)
    if (!(k in obj)) obj[k] = value
    else if (Array.isArray(obj[k])) obj[k].push(value)
    else obj[k] = [obj[k], value]
  }
  return obj
}

function headersOut(obj) {
  const pairs = []
  for (const [k, v] of Object.entries(obj)) {
    for (const one of Array.isArray(v) ? v : [v]) pairs.push([k, b64(one)])
  }
  return pairs
}

async function withAdmin(kafka, fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

// The private cluster factory the producer, consumer and admin clients are built on.
function createCluster(kafka) {
  const sym = Object.getOwnPropertySymbols(kafka).find(
    s => s.toString() === 'Symbol(private:Kafka:createCluster)')
  return kafka[sym]({ allowAutoTopicCreation: false })
}

async function produce(kafka, cmd) {
  const producer = kafka.producer({ allowAutoTopicCreation: cmd.autoCreate === true })
  await producer.connect()
  try {
    const res = await producer.send({
      topic: cmd.topic,
      acks: -1,
      timeout: TIMEOUT_MS,
      compression: CODECS[cmd.codec || 'none'],
      messages: cmd.messages.map(m => ({
        partition: cmd.partition,
        key: unb64(m.key),
        value: unb64(m.value),
        headers: headersIn(m.headers),
        timestamp: m.ts === null ? undefined : String(m.ts),
      })),
    })
    return res.map(r => ({ partition: r.partition, errorCode: r.errorCode,
      baseOffset: Number(r.baseOffset) }))
  } finally {
    await producer.disconnect()
  }
}

async function offsets(kafka, cmd) {
  return withAdmin(kafka, async admin => {
    if (cmd.at === 'timestamp') {
      return (await admin.fetchTopicOffsetsByTimestamp(cmd.topic, cmd.ts)).map(p => ({
        partition: p.partition, offset: Number(p.offset) }))
    }
    return (await admin.fetchTopicOffsets(cmd.topic)).map(p => ({
      partition: p.partition, low: Number(p.low), high: Number(p.high) }))
  })
}

async function fetchFrom(kafka, cmd) {
  const cluster = createCluster(kafka)
  await cluster.connect()
  try {
    await cluster.addTargetTopic(cmd.topic)
    await cluster.refreshMetadata()
    const leaders = cluster.findLeaderForPartitions(cmd.topic, [cmd.partition])
    const broker = await cluster.findBroker({ nodeId: Object.keys(leaders)[0] })
    const records = []
    let offset = cmd.offset
    const deadline = Date.now() + TIMEOUT_MS
    while (offset < cmd.end) {
      if (Date.now() > deadline) throw new Error(`fetch stuck at offset ${offset}`)
      const res = await broker.fetch({
        replicaId: -1, isolationLevel: 0, maxWaitTime: 100, minBytes: 1,
        maxBytes: cmd.maxBytes || 10485760,
        topics: [{ topic: cmd.topic, partitions: [{ partition: cmd.partition,
          fetchOffset: String(offset), maxBytes: cmd.maxBytes || 1048576 }] }],
      })
      const part = res.responses[0].partitions[0]
      if (part.errorCode !== 0) throw new Error(`fetch error code ${part.errorCode}`)
      // A fetch returns whole batches: skip records before the fetch offset. Control records
      // (a new leader's no-op entry) take an offset but are no data, as for kafkajs's consumer.
      for (const m of part.messages) {
        const o = Number(m.offset)
        if (o < offset) continue
        if (o !== offset) throw new Error(`offset ${o} follows ${offset - 1}`)
        if (m.isControlRecord) {
          offset = o + 1
          continue
        }
        records.push({ offset: o, key: b64(m.key), value: b64(m.value),
          headers: headersOut(m.headers), ts: Number(m.timestamp) })
        offset = o + 1
      }
    }
    return records
  } finally {
    await cluster.disconnect()
  }
}

async function run(kafka, cmd) {
  switch (cmd.op) {
    case 'create':
      return withAdmin(kafka, admin => admin.createTopics({ waitForLeaders: true,
        timeout: TIMEOUT_MS, topics: [{ topic: cmd.topic, numPartitions: cmd.partitions }] }))
    case 'delete':
      return withAdmin(kafka, async admin => {
        await admin.deleteTopics({ topics: [cmd.topic], timeout: TIMEOUT_MS })
        return true
      })
    case 'metadata':
      return withAdmin(kafka, async admin => ({
        topics: await admin.listTopics(),
        described: cmd.topic ? (await admin.fetchTopicMetadata({ topics: [cmd.topic] })).topics
          .map(t => ({ name: t.name, partitions: t.partitions.map(p => p.partitionId) })) : [],
      }))
    case 'produce':
      return produce(kafka, cmd)
    case 'offsets':
      return offsets(kafka, cmd)
    case 'fetch':
      return fetchFrom(kafka, cmd)
    default:
      throw new Error(`unknown op ${cmd.op}`)
  }
}

async function main() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const cmd = JSON.parse(Buffer.concat(chunks).toString())
  let out
  try {
    out = { result: await run(kafkaFor(process.argv[2]), cmd) }
  } catch (e) {
    out = { error: e.name || 'Error', type: e.type || null, message: String(e.message) }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}

main()

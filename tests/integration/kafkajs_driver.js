// Drives kafkajs 2.2.4 for test_kafkajs.py and test_groups_kafkajs.py: reads one JSON command on
// stdin, runs it against the broker in argv[2] and prints one JSON result on stdout (errors:
// {"error": name, "message"}).
//
// One command is long-lived: 'group-consume' runs a kafkajs consumer in a consumer group and
// prints one JSON event per line as things happen ("assign", "record", "commit",
// "commit-error", each with a wall-clock time "ts" in milliseconds) until SIGTERM, when it
// leaves the group cleanly (LeaveGroup) and prints its result line.
//
// Bytes travel as base64 strings, null stays null. Headers travel as [key, value] pairs.
//
// kafkajs has no assign(): its consumer only works through a consumer group. Reads of a given
// offset ('fetch') therefore go through kafkajs's own cluster and broker layer (the code its
// consumer runs underneath: the same Fetch and ListOffsets encoders and record batch decoders),
// fetching one partition from an explicit offset.
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

// Wall-clock milliseconds with sub-millisecond precision, comparable across processes.
const nowMs = () => performance.timeOrigin + performance.now()

function emit(event) {
  process.stdout.write(JSON.stringify(Object.assign({ ts: nowMs() }, event)) + '\n')
}

// A group member that commits every record right after reading it, so at most the one record
// whose commit did not succeed can be delivered again after a rebalance or a restart.
async function groupConsume(kafka, cmd) {
  const consumer = kafka.consumer({
    groupId: cmd.group,
    sessionTimeout: cmd.sessionTimeout,
    heartbeatInterval: 500,
    rebalanceTimeout: cmd.sessionTimeout,
    maxWaitTimeInMs: 200,
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 },
  })
  consumer.on(consumer.events.GROUP_JOIN, e => {
    emit({ event: 'assign', memberId: e.payload.memberId,
      partitions: e.payload.memberAssignment[cmd.topic] || [] })
  })
  const stopped = new Promise(resolve => process.once('SIGTERM', resolve))
  await consumer.connect()
  await consumer.subscribe({ topics: [cmd.topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const offset = Number(message.offset)
      emit({ event: 'record', partition, offset, value: b64(message.value) })
      try {
        await consumer.commitOffsets([{ topic: cmd.topic, partition,
          offset: String(offset + 1) }])
        emit({ event: 'commit', partition, offset: offset + 1 })
      } catch (e) {
        emit({ event: 'commit-error', partition, offset: offset + 1, error: e.type || e.name })
      }
    },
  })
  await stopped
  await consumer.disconnect()
  return true
}

async function groupAdmin(kafka, cmd) {
  return withAdmin(kafka, async admin => {
    switch (cmd.op) {
      case 'groups-list':
        return (await admin.listGroups()).groups
      case 'groups-describe':
        return (await admin.describeGroups(cmd.groups)).groups.map(g => ({
          groupId: g.groupId, state: g.state, protocolType: g.protocolType,
          protocol: g.protocol, members: g.members.map(m => m.memberId) }))
      case 'groups-delete':
        try {
          return (await admin.deleteGroups(cmd.groups)).map(g => ({ groupId: g.groupId,
            errorCode: g.errorCode }))
        } catch (e) {
          // kafkajs throws when any group failed; the per-group answers ride on the error.
          if (!e.groups) throw e
          return e.groups.map(g => ({ groupId: g.groupId, errorCode: g.errorCode || 0,
            error: g.error ? g.error.type : null }))
        }
      case 'offsets-fetch':
        return (await admin.fetchOffsets({ groupId: cmd.group, topics: [cmd.topic] }))
          .flatMap(t => t.partitions.map(p => ({ partition: p.partition,
            offset: Number(p.offset) })))
      default:
        throw new Error(`unknown op ${cmd.op}`)
    }
  })
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
    case 'group-consume':
      return groupConsume(kafka, cmd)
    case 'groups-list':
    case 'groups-describe':
    case 'groups-delete':
    case 'offsets-fetch':
      return groupAdmin(kafka, cmd)
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
  // A consumer that rode through a broker restart can leave kafkajs's reconnect timers behind,
  // which would keep node running after its disconnect: a member ends when it has answered.
  process.stdout.write(JSON.stringify(out) + '\n', () => {
    if (cmd.op === 'group-consume') process.exit(0)
  })
}

main()

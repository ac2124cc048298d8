#!/usr/bin/env node
// The Java backend's side of ws.notice: publishes one persistent message to the RabbitMQ queue
// the gateway consumes (wsgate.toml's [[consumer]] "notice"), which broadcasts it to every open
// page. amqplib comes from examples/node_modules (`cd examples && npm install`); Node finds it
// from this file's location, whatever the working directory.
//
//   node examples/payment-progress/notice.mjs "maintenance at 22:00" [--amqp URL] [--queue ws.notice]

import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    amqp: { type: 'string', default: process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/%2f' },
    queue: { type: 'string', default: 'ws.notice' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node notice.mjs "TEXT" [--amqp URL] [--queue ws.notice]');
  process.exit(2);
}

let connection;
try {
  connection = await amqp.connect(opt.amqp);
} catch (err) {
  console.error(`cannot connect to RabbitMQ at ${opt.amqp}: ${err.message} (is rabbitmq-server running?)`);
  process.exit(1);
}
const channel = await connection.createConfirmChannel();
// Declared as the gateway declares it (durable, no arguments), so a notice sent before the
// gateway first started waits in the queue instead of being dropped.
await channel.assertQueue(opt.queue, { durable: true });
// The message id makes a redelivery (a gateway killed before it acknowledged) go out once.
channel.sendToQueue(opt.queue, Buffer.from(positionals[0]), { persistent: true, messageId: randomUUID() });
await channel.waitForConfirms();
await connection.close();
console.log(`published to ${opt.queue}: ${positionals[0]}`);

// The comparison side of invited's benchmark (issue 17): the same emails sent
// by graphile-worker (a Postgres job queue) with nodemailer, to the same SMTP
// sink, keeping state in the same PostgreSQL. Run by scripts/bench-compare;
// prints one JSON line per figure on stdout.
//
//   node bench.mjs burst --jobs 10000
//   node bench.mjs paced --rate 50 --secs 10
//
// Environment: BENCH_GRAPHILE_DATABASE_URL (a database this script may empty),
// BENCH_SMTP (host:port of the sink). Flags: --concurrency (graphile-worker's
// jobs at once, default 32), --pool (nodemailer's SMTP connections, default 16).
import { run, makeWorkerUtils, Logger } from "graphile-worker";
import nodemailer from "nodemailer";
import pg from "pg";

const [mode, ...rest] = process.argv.slice(2);
const flags = Object.fromEntries(
  rest.reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
const number = (name, fallback) => (flags[name] === undefined ? fallback : Number(flags[name]));
const connectionString =
  process.env.BENCH_GRAPHILE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/invited_bench_graphile";
const [smtpHost, smtpPort] = (process.env.BENCH_SMTP ?? "127.0.0.1:2525").split(":");
const concurrency = number("concurrency", 32);
const smtpPool = number("pool", 16);

// An invitation email of about the size of invited's (text and HTML parts).
function message(i) {
  const link = `https://app.example.test/invitations/accept?token=${"x".repeat(43)}${i}`;
  const text = `Olive Owner invited you to join Bench & Co as an Employee.\n\nAccept: ${link}\n\nThis invitation expires in 7 days.\n`;
  const html = `<!doctype html><html><body style="font-family:sans-serif"><h1>Bench &amp; Co</h1>
<p>Olive Owner invited you to join <strong>Bench &amp; Co</strong> as an Employee.</p>
<p><a href="${link}" style="background:#1a56db;color:#fff;padding:12px 20px;border-radius:6px">Accept the invitation</a></p>
<p>This invitation expires in 7 days.</p>${"<p>&nbsp;</p>".repeat(40)}</body></html>`;
  return {
    from: "Invitations <bench@bench.example>",
    to: `invitee${i}@bench.example`,
    subject: "You have been invited to join Bench & Co",
    text,
    html,
  };
}

async function resetDatabase() {
  const url = new URL(connectionString);
  const name = url.pathname.slice(1);
  url.pathname = "/postgres";
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  await resetDatabase();
  const transport = nodemailer.createTransport({
    host: smtpHost,
    port: Number(smtpPort),
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: smtpPool,
    maxMessages: Infinity,
  });
  const committedAt = new Map(); // job's i -> when its transaction committed (ms)
  const doneAt = new Map(); // job's i -> when the sink's 250 arrived (ms)
  const latencies = () => [...doneAt].map(([i, at]) => at - committedAt.get(i));
  let done = 0;
  let lastDone = 0;
  let allDone;
  const finished = new Promise((resolve) => (allDone = resolve));
  let expected = Infinity;
  const taskList = {
    send_invitation: async (payload) => {
      await transport.sendMail(message(payload.i));
      const now = performance.now();
      // Paired with the commit time at the end: in the paced run a job may
      // be sent before its addJob's promise has resolved here.
      doneAt.set(payload.i, now);
      done += 1;
      lastDone = now;
      if (done >= expected) allDone();
    },
  };
  // Warnings and errors only: a line per job would cost the comparison side
  // time that invited (log.filter=warn in the benchmark) does not spend.
  const logger = new Logger(() => (level, text) => {
    if (level === "error" || level === "warning") console.error(`${level}: ${text}`);
  });
  const utils = await makeWorkerUtils({ connectionString, logger });
  await utils.migrate();
  const options = { connectionString, concurrency, maxPoolSize: concurrency + 2, taskList, logger, noHandleSignals: true };
  let runner;
  let start;
  if (mode === "burst") {
    const jobs = number("jobs", 10_000);
    expected = jobs;
    const specs = Array.from({ length: jobs }, (_, i) => ({ identifier: "send_invitation", payload: { i } }));
    start = performance.now();
    await utils.addJobs(specs); // one call, one transaction
    const commit = performance.now();
    for (let i = 0; i < jobs; i++) committedAt.set(i, commit);
    runner = await run(options);
    await finished;
    const seconds = (lastDone - start) / 1000;
    report({ figure: "burst", emails: jobs, seconds, emails_per_s: jobs / seconds, latencies: latencies() });
  } else if (mode === "paced") {
    const rate = number("rate", 50);
    const secs = number("secs", 10);
    expected = rate * secs;
    runner = await run(options);
    start = performance.now();
    const adds = [];
    for (let i = 0; i < expected; i++) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // One job per request, each in its own transaction, as an app would.
      adds.push(utils.addJob("send_invitation", { i }).then(() => committedAt.set(i, performance.now())));
    }
    await finished;
    await Promise.all(adds);
    report({ figure: "paced", rate, emails: expected, latencies: latencies() });
  } else {
    throw new Error(`unknown mode ${mode}: burst or paced`);
  }
  await runner.stop();
  await utils.release();
  transport.close();
}

function report({ latencies, ...rest }) {
  const sorted = latencies.slice().sort((a, b) => a - b);
  const line = {
    side: "graphile-worker",
    ...rest,
    concurrency,
    smtp_pool: smtpPool,
    p50_ms: percentile(sorted, 50),
    p99_ms: percentile(sorted, 99),
  };
  console.log(JSON.stringify(line));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

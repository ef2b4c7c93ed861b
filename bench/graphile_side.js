// graphile-worker's side of bench_queue.py. Not a project dependency: bench_queue.py installs
// graphile-worker with npm into a temporary folder and runs this file with NODE_PATH pointing there.
//
//   node graphile_side.js migrate DSN
//   node graphile_side.js work DSN CONCURRENCY     (prints "ready", runs until SIGTERM)
//
// Default mode: LISTEN/NOTIFY with the default 2 s poll, no batching. Info and debug log lines (one
// "Completed task" line per job) are dropped, as ours run at WARNING. A job whose payload has
// "lat" prints {"id", "created", "at"}: its created_at and when its handler started, in ms since
// the epoch (the same machine's clock as the benchmark's).
"use strict";
const { run, runMigrations, Logger } = require("graphile-worker");

const [mode, connectionString, concurrency] = process.argv.slice(2);
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`${level}: ${message}`);
});

async function main() {
  if (mode === "migrate") {
    await runMigrations({ connectionString, logger });
    return;
  }
  const runner = await run({
    connectionString, concurrency: Number(concurrency), logger,
    taskList: {
      noop: async (payload, helpers) => {
        if (payload && payload.lat) {
          const at = Date.now();
          const created = new Date(helpers.job.created_at).getTime();
          process.stdout.write(JSON.stringify({ id: String(helpers.job.id), created, at }) + "\n");
        }
      },
    },
  });
  process.stdout.write("ready\n");
  await runner.promise;
}

main().catch((err) => { console.error(err); process.exit(1); });

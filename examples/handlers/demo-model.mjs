#!/usr/bin/env node
// A demo model handler for PIE's `{"type": "command"}` handler and `pie worker`: it reads the
// job envelope as JSON on stdin and writes its output as JSON on stdout. No dependencies.
//   exit 0 -> the job succeeds with stdout as its output
//   exit 3 -> the job fails (ask for it with `"input": {"fail": true}`); stderr becomes the tail
import process from 'node:process';
import { text } from 'node:stream/consumers';

const envelope = JSON.parse(await text(process.stdin));
const { job_type: jobType, model_id: modelId, model_version: modelVersion } = envelope;
const input = envelope.input ?? {};
const model = `${modelId}@${modelVersion}`;

if (input.fail === true) {
  process.stderr.write(`demo-model: job ${envelope.job_id} failed on purpose (input.fail)\n`);
  process.exit(3);
}

if (jobType === 'training') {
  const samples = Array.isArray(input.samples) ? input.samples.length : 0;
  process.stdout.write(JSON.stringify({ trained: true, model, job_type: jobType, samples }));
} else {
  // Deterministic: the same features and input always give the same delay (FNV-1a hash).
  let hash = 0x811c9dc5;
  for (const char of JSON.stringify([envelope.features ?? {}, input])) {
    hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  }
  const prediction = { delay_minutes: (hash % 1800) / 10 };
  process.stdout.write(JSON.stringify({ prediction, model, job_type: jobType }));
}

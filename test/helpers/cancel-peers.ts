import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Envelope } from '../../src/domain/delivery.js';
import { closeServer, listenOnLoopback } from './loopback.js';

/**
 * The peers cancellation tests stop: an http handler that accepts every job and records the
 * cancel notices it gets, and command scripts that run until killed, writing their pid to a
 * file so that a test can watch the process go.
 */

export interface ReceivedNotice {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * Answers 202 to every delivery, except one whose input has `hold: true`, which it never
 * answers; keeps deliveries and `job.cancelled` notices apart.
 */
export class AcceptingHandler {
  readonly deliveries: Envelope[] = [];
  readonly notices: ReceivedNotice[] = [];
  url = '';
  private server!: http.Server;

  async start(): Promise<void> {
    this.server = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        const parsed = JSON.parse(body) as { type?: unknown };
        if (parsed.type === 'job.cancelled') this.notices.push({ headers: request.headers, body });
        else this.deliveries.push(parsed as Envelope);
        if ((parsed as Envelope).input?.hold !== true) response.writeHead(202).end('{}');
      });
    });
    this.url = `http://127.0.0.1:${await listenOnLoopback(this.server)}/hook`;
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}

/**
 * A `command` handler (or `pie worker` command) that writes its pid to `<dir>/<PIE_JOB_ID>` and
 * then runs until killed; with `trapSigterm`, it ignores SIGTERM, so only SIGKILL ends it.
 */
export function sleeperCommand(options: { trapSigterm?: boolean } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-cancel-'));
  const script = [
    options.trapSigterm === true ? `process.on('SIGTERM', () => {});` : '',
    `const file = require('path').join(process.argv[1], process.env.PIE_JOB_ID);`,
    `require('fs').writeFileSync(file + '.tmp', String(process.pid));`,
    `require('fs').renameSync(file + '.tmp', file);`,
    `setInterval(() => {}, 1000);`,
  ].join('\n');
  return {
    command: process.execPath,
    args: ['-e', script, dir],
    /** The pid of the job's process, once it has started. */
    pidOf(jobId: string): number | undefined {
      const file = path.join(dir, jobId);
      return fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : undefined;
    },
  };
}

/** Whether a process runs; a zombie waiting for a reaper (some containers lack one) is gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

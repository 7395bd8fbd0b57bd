import crypto from 'node:crypto';
import http from 'node:http';
import type { Envelope } from '../../src/domain/delivery.js';
import { closeServer, listenOnLoopback } from './loopback.js';

/**
 * A local TrueFoundry control plane for tests, on 127.0.0.1, speaking its job API as PIE uses it:
 * `POST /api/svc/v1/jobs/trigger` with `{deploymentId | applicationId, input: {command?, params}}`
 * answering `{message, jobRunName, data: JobRun}`, and `GET /api/svc/v1/jobs/{jobId}/runs/
 * {jobRunName}` answering `{data: JobRun}`, where `jobId` is the job's application id, and
 * `POST /api/svc/v1/jobs/terminate?deploymentId=...&jobRunName=...`, which sets the run
 * TERMINATED and answers `{message, data: JobRun}`. Every
 * request needs `Authorization: Bearer <token>`; a trigger's `input.params.pie_envelope` must be
 * an envelope's JSON.
 */

export interface FakeRun {
  name: string;
  /** The id the trigger named, and the other one as the fake derives it. */
  deploymentId: string;
  applicationId: string;
  /** Which id the trigger's body carried. */
  triggeredBy: 'deploymentId' | 'applicationId';
  /** The trigger's body, as sent. */
  body: Record<string, unknown>;
  /** `input.params.pie_envelope`, parsed. */
  envelope: Envelope;
  status: string;
  createdAt: number;
  error?: string;
  exitCode?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
}

interface ScriptedAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export class FakeTrueFoundry {
  /** Triggered runs, oldest first. */
  readonly runs: FakeRun[] = [];
  /** Terminate calls that found their run, in order. */
  readonly terminations: { deploymentId: string; jobRunName: string }[] = [];
  /** Every request received, rejected ones included. */
  readonly requests: RecordedRequest[] = [];
  private readonly scripted: ScriptedAnswer[] = [];
  private delays: number[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    readonly token: string,
  ) {}

  static async start(options: { token?: string } = {}): Promise<FakeTrueFoundry> {
    const token = options.token ?? `tfy-${crypto.randomBytes(12).toString('hex')}`;
    const started: { fake?: FakeTrueFoundry } = {};
    const server = http.createServer((req, res) => {
      if (started.fake === undefined) return void res.writeHead(503).end();
      started.fake.handle(req, res);
    });
    const port = await listenOnLoopback(server);
    started.fake = new FakeTrueFoundry(server, `http://127.0.0.1:${port}`, token);
    return started.fake;
  }

  /** The application id the fake gives the job of a deployment (and the reverse). */
  static applicationIdOf(deploymentId: string): string {
    return `app-of-${deploymentId}`;
  }

  static deploymentIdOf(applicationId: string): string {
    return `dep-of-${applicationId}`;
  }

  run(name: string): FakeRun {
    const run = this.runs.find((r) => r.name === name);
    if (run === undefined) throw new Error(`no run named ${name}`);
    return run;
  }

  /** What the run-status route reports for the run from now on. */
  setRunStatus(name: string, status: string, detail: { error?: string; exitCode?: number } = {}) {
    const run = this.run(name);
    run.status = status;
    if (detail.error !== undefined) run.error = detail.error;
    if (detail.exitCode !== undefined) run.exitCode = detail.exitCode;
  }

  /** The next `count` authorized triggers get `status` (and no run is created). */
  failNextTriggers(
    count: number,
    status: number,
    options: { headers?: Record<string, string>; body?: string } = {},
  ): void {
    const body =
      options.body ?? JSON.stringify({ statusCode: status, message: 'scripted failure' });
    for (let i = 0; i < count; i += 1) {
      this.scripted.push({ status, headers: options.headers ?? {}, body });
    }
  }

  /** The next `count` triggers are answered only after `delayMs`. */
  delayNextTriggers(count: number, delayMs: number): void {
    this.delays.push(...Array<number>(count).fill(delayMs));
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await closeServer(this.server);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', this.url);
      const path = url.pathname;
      this.requests.push({
        method: req.method ?? '',
        path,
        authorization: req.headers.authorization,
      });
      if (req.headers.authorization !== `Bearer ${this.token}`) {
        return send(res, 401, { statusCode: 401, message: 'Unauthorized' });
      }
      if (req.method === 'POST' && path === '/api/svc/v1/jobs/trigger') {
        const delay = this.delays.shift();
        const answer = () => this.trigger(Buffer.concat(chunks).toString('utf8'), res);
        if (delay === undefined) return answer();
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          answer();
        }, delay);
        this.timers.add(timer);
        return;
      }
      if (req.method === 'POST' && path === '/api/svc/v1/jobs/terminate') {
        return this.terminate(url.searchParams, res);
      }
      const runRoute = /^\/api\/svc\/v1\/jobs\/([^/]+)\/runs\/([^/]+)$/.exec(path);
      if (req.method === 'GET' && runRoute !== null) {
        const [, jobId = '', runName = ''] = runRoute.map((part) => decodeURIComponent(part));
        const run = this.runs.find((r) => r.name === runName && r.applicationId === jobId);
        if (run === undefined) return send(res, 404, { statusCode: 404, message: 'Not Found' });
        return send(res, 200, { data: jobRun(run) });
      }
      send(res, 404, { statusCode: 404, message: `Cannot ${req.method} ${path}` });
    });
  }

  private terminate(query: URLSearchParams, res: http.ServerResponse): void {
    const deploymentId = query.get('deploymentId');
    const jobRunName = query.get('jobRunName');
    if (deploymentId === null || jobRunName === null) {
      return send(res, 400, { statusCode: 400, message: 'deploymentId and jobRunName required' });
    }
    const run = this.runs.find((r) => r.name === jobRunName && r.deploymentId === deploymentId);
    if (run === undefined) return send(res, 404, { statusCode: 404, message: 'Not Found' });
    run.status = 'TERMINATED';
    this.terminations.push({ deploymentId, jobRunName });
    send(res, 200, { message: 'Job run terminated', data: jobRun(run) });
  }

  private trigger(text: string, res: http.ServerResponse): void {
    const scripted = this.scripted.shift();
    if (scripted !== undefined) {
      res.writeHead(scripted.status, { 'content-type': 'application/json', ...scripted.headers });
      return void res.end(scripted.body);
    }
    const parsed = parseTrigger(text);
    if (typeof parsed === 'string') return send(res, 400, { statusCode: 400, message: parsed });
    const { body, envelope } = parsed;
    const deploymentId =
      typeof body.deploymentId === 'string'
        ? body.deploymentId
        : FakeTrueFoundry.deploymentIdOf(body.applicationId as string);
    const applicationId =
      typeof body.applicationId === 'string'
        ? body.applicationId
        : FakeTrueFoundry.applicationIdOf(body.deploymentId as string);
    const run: FakeRun = {
      name: `pie-job-run-${this.runs.length + 1}-${crypto.randomBytes(3).toString('hex')}`,
      deploymentId,
      applicationId,
      triggeredBy: typeof body.deploymentId === 'string' ? 'deploymentId' : 'applicationId',
      body,
      envelope,
      status: 'CREATED',
      createdAt: Date.now(),
    };
    this.runs.push(run);
    send(res, 200, { message: 'Job triggered', jobRunName: run.name, data: jobRun(run) });
  }
}

/** The checks TrueFoundry makes, plus that the one param PIE sends is an envelope. */
function parseTrigger(
  text: string,
): { body: Record<string, unknown>; envelope: Envelope } | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'body is not JSON';
  }
  if (!isObject(body)) return 'body must be an object';
  const hasDeployment = body.deploymentId !== undefined;
  const hasApplication = body.applicationId !== undefined;
  if (hasDeployment === hasApplication) return 'exactly one of deploymentId and applicationId';
  const id = hasDeployment ? body.deploymentId : body.applicationId;
  if (typeof id !== 'string' || id === '') return 'the id must be a non-empty string';
  if (!isObject(body.input)) return 'input must be an object';
  const { command, params } = body.input;
  if (command !== undefined && typeof command !== 'string') return 'input.command must be a string';
  if (!isObject(params)) return 'input.params must be an object';
  for (const [key, value] of Object.entries(params)) {
    if (typeof value !== 'string') return `input.params.${key} must be a string`;
  }
  const raw = params.pie_envelope;
  if (typeof raw !== 'string') return 'input.params.pie_envelope is missing';
  let envelope: unknown;
  try {
    envelope = JSON.parse(raw);
  } catch {
    return 'input.params.pie_envelope is not JSON';
  }
  const problem = envelopeProblem(envelope);
  if (problem !== undefined) return `input.params.pie_envelope: ${problem}`;
  return { body, envelope: envelope as Envelope };
}

function envelopeProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not an object';
  const strings = [
    'job_id',
    'job_type',
    'model_id',
    'model_version',
    'client_id',
    'domain_id',
    'assignment_id',
    'assignment_key',
    'deadline',
  ];
  for (const key of strings) if (typeof value[key] !== 'string') return `${key} must be a string`;
  if (typeof value.attempt !== 'number') return 'attempt must be a number';
  if (!isObject(value.config) || !isObject(value.input)) return 'config and input must be objects';
  const callback = value.callback;
  if (!isObject(callback)) return 'callback must be an object';
  for (const key of ['url', 'heartbeat_url', 'token']) {
    if (typeof callback[key] !== 'string') return `callback.${key} must be a string`;
  }
  return undefined;
}

function jobRun(run: FakeRun): Record<string, unknown> {
  const ended = ['FINISHED', 'FAILED', 'TERMINATED'].includes(run.status);
  return {
    name: run.name,
    applicationName: `job-${run.applicationId}`,
    deploymentVersion: '1',
    createdAt: run.createdAt,
    ...(ended && { endTime: Date.now(), duration: Date.now() - run.createdAt }),
    command: 'python main.py --envelope {{pie_envelope}}',
    totalRetries: 0,
    ...(run.error !== undefined && { error: run.error }),
    status: run.status,
    triggeredBy: 'pie',
    triggeredBySubject: {
      subjectId: 'va-pie',
      subjectType: 'virtualaccount',
      subjectSlug: 'pie',
      subjectDisplayName: 'PIE',
    },
    ...(run.exitCode !== undefined && { exitCode: run.exitCode }),
    applicationId: run.applicationId,
    deploymentId: run.deploymentId,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

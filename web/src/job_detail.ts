// The job detail panel of the Me page (#job-detail): the job's state, its tasks and their
// logs in pre#job-logs, each line prefixed "[task N] ".
//
// Logs are kept per lease (a task retried on another machine has one lease per attempt) and
// shown by task, then lease. While a lease runs, its `task_log` messages are appended as
// they come (a line without its newline yet is shown as is and completed later). When its
// task is over, the whole stdout and stderr blobs named in the task result replace what was
// streamed: they are complete, where the live stream only has what came since the page
// listened.

import { ApiError, describeError, getJson, getText } from './api';
import { byId, el, fillTable, td } from './dom';
import type { Job, JobTask, Task, TaskResult } from './types';

const kLinesPerLeaseMax = 5000;
// Live output is kept for every lease of the account from sign-in on, so a job opened while
// it runs shows what came before: at most this much per lease, for this many leases.
const kBufferedBytesPerLeaseMax = 256 * 1024;
const kBufferedLeasesMax = 64;

interface LeaseLog {
  task: number;
  lines: { text: string; stderr: boolean }[];
  partial: { stdout: string; stderr: string };
  final: boolean; // the result's blobs are in: live output is ignored
  dropped: number; // lines dropped beyond kLinesPerLeaseMax
}

export class JobDetail {
  private readonly panel = byId('job-detail');
  private readonly logs_pre = byId<HTMLPreElement>('job-logs');
  private job: Job | null = null;
  private logs = new Map<number, LeaseLog>();
  private results = new Map<number, TaskResult | null>(); // by lease
  private loading = new Set<number>(); // leases whose blobs are being read
  // Raw live output by lease, oldest lease first (Map keeps insertion order).
  private buffered = new Map<number, { chunks: { stream: 'stdout' | 'stderr'; data: string }[]; bytes: number }>();
  private token: string | null = null;
  private generation = 0;
  private render_pending = false;

  constructor() {
    byId('job-detail-close').addEventListener('click', () => this.close());
  }

  get jobId(): number | null {
    return this.job?.id ?? (this.panel.hidden ? null : Number(this.panel.dataset['job']));
  }

  async open(id: number, token: string): Promise<void> {
    const generation = ++this.generation;
    this.token = token;
    this.job = null;
    this.logs = new Map();
    this.results = new Map();
    this.loading = new Set();
    this.panel.dataset['job'] = String(id);
    this.panel.hidden = false;
    this.panel.querySelector('[data-field="job-id"]')!.textContent = `#${id}`;
    byId('job-state').textContent = '…';
    this.panel.querySelector('[data-field="job-command"]')!.textContent = '';
    fillTable(byId<HTMLTableElement>('job-tasks'), [], 'Loading…');
    this.logs_pre.replaceChildren();
    this.panel.scrollIntoView({ behavior: 'smooth', block: 'start' });
    let job: Job;
    try {
      job = (await getJson<{ job: Job }>(`/v1/jobs/${id}`, { token })).job;
    } catch (e) {
      if (generation !== this.generation) return;
      byId('job-state').textContent = 'unknown';
      fillTable(byId<HTMLTableElement>('job-tasks'), [], `Could not read the job: ${describeError(e)}`);
      return;
    }
    if (generation !== this.generation) return;
    this.setJob(job);
    // Each task that has (had) a lease: its result, if any, brings the whole logs.
    await Promise.all(
      (job.tasks ?? []).filter((t) => t.lease !== 0).map((t) => this.loadTask(t.index, t.lease, generation)),
    );
  }

  close(): void {
    ++this.generation;
    this.job = null;
    this.panel.hidden = true;
    this.panel.removeAttribute('data-job');
  }

  // The job as the exchange now has it (a newer read, or a job_task / job_ended message).
  setJob(job: Job): void {
    if (this.panel.hidden || Number(this.panel.dataset['job']) !== job.id) return;
    const tasks = job.tasks ?? this.job?.tasks;
    this.job = { ...job, ...(tasks ? { tasks } : {}) };
    const state = byId('job-state');
    state.textContent = job.state;
    state.dataset['state'] = job.state;
    const command = job.task_spec?.command ?? this.job.task_spec?.command;
    this.panel.querySelector('[data-field="job-command"]')!.textContent = command
      ? `$ ${command.map(shellQuote).join(' ')}`
      : '';
    for (const t of tasks ?? []) this.logFor(t.lease, t.index);
    this.renderTasks();
  }

  // A job_task message: one task changed.
  updateTask(job: number, task: JobTask): void {
    if (!this.job || this.job.id !== job || !this.job.tasks) return;
    const previous = this.job.tasks.find((t) => t.index === task.index);
    this.job.tasks = this.job.tasks.map((t) => (t.index === task.index ? task : t));
    if (task.lease !== 0) this.logFor(task.lease, task.index);
    this.renderTasks();
    // A task that just finished: read its result (and so its logs).
    if (task.lease !== 0 && task.state === 'finished' && previous?.state !== 'finished') {
      void this.loadTask(task.index, task.lease, this.generation);
    }
  }

  setJobState(job: number, state: string): void {
    if (!this.job || this.job.id !== job) return;
    this.job.state = state;
    byId('job-state').textContent = state;
    byId('job-state').dataset['state'] = state;
  }

  // A task_assigned message naming this job.
  assign(job: number, task_index: number, lease: number): void {
    if (!this.job || this.job.id !== job) return;
    this.logFor(lease, task_index);
  }

  // Live output of a lease: kept, and shown when the lease is one of the open job's.
  append(lease: number, stream: 'stdout' | 'stderr', data: string): void {
    let buffer = this.buffered.get(lease);
    if (!buffer) {
      buffer = { chunks: [], bytes: 0 };
      this.buffered.set(lease, buffer);
      if (this.buffered.size > kBufferedLeasesMax) this.buffered.delete(this.buffered.keys().next().value!);
    }
    buffer.chunks.push({ stream, data });
    buffer.bytes += data.length;
    while (buffer.bytes > kBufferedBytesPerLeaseMax && buffer.chunks.length > 1) {
      buffer.bytes -= buffer.chunks.shift()!.data.length;
    }
    const log = this.logs.get(lease);
    if (log) this.applyChunk(log, stream, data);
  }

  // Forgets the buffered output (signing out).
  clear(): void {
    this.buffered.clear();
    this.close();
  }

  private applyChunk(log: LeaseLog, stream: 'stdout' | 'stderr', data: string): void {
    if (log.final) return;
    const text = log.partial[stream] + data;
    const parts = text.split('\n');
    log.partial[stream] = parts.pop() ?? '';
    for (const line of parts) this.push(log, line, stream === 'stderr');
    this.scheduleRender();
  }

  // A task_finished message: the result names the whole logs.
  finished(lease: number, result: TaskResult | null): void {
    const log = this.logs.get(lease);
    if (!log) return;
    this.results.set(lease, result);
    this.renderTasks();
    if (result) void this.loadLogs(lease, result, this.generation);
  }

  private logFor(lease: number, task: number): LeaseLog | null {
    if (lease === 0) return null;
    let log = this.logs.get(lease);
    if (!log) {
      log = { task, lines: [], partial: { stdout: '', stderr: '' }, final: false, dropped: 0 };
      this.logs.set(lease, log);
      for (const chunk of this.buffered.get(lease)?.chunks ?? []) this.applyChunk(log, chunk.stream, chunk.data);
    }
    return log;
  }

  private async loadTask(index: number, lease: number, generation: number): Promise<void> {
    const log = this.logFor(lease, index);
    if (!log || log.final) return;
    let task: Task;
    try {
      task = (await getJson<{ task: Task }>(`/v1/leases/${lease}/task`, { token: this.token })).task;
    } catch (e) {
      if (generation !== this.generation) return;
      // No task yet (404 unknown_task) is normal for a lease just bought.
      if (!(e instanceof ApiError && e.code === 'unknown_task')) {
        this.push(log, `(the task could not be read: ${describeError(e)})`, true);
        this.scheduleRender();
      }
      return;
    }
    if (generation !== this.generation) return;
    if (task.result) {
      this.results.set(lease, task.result);
      this.renderTasks();
      await this.loadLogs(lease, task.result, generation);
    } else if (task.status === 'lost') {
      this.results.set(lease, null);
      this.renderTasks();
    }
  }

  private async loadLogs(lease: number, result: TaskResult, generation: number): Promise<void> {
    const log = this.logs.get(lease);
    if (!log || log.final || this.loading.has(lease)) return;
    this.loading.add(lease);
    const read = async (stream: 'stdout' | 'stderr'): Promise<LeaseLog['lines']> => {
      const blob = result[stream];
      if (!blob || blob.size === 0) return [];
      try {
        const text = await getText(`/v1/blobs/${encodeURIComponent(blob.sha256)}`, { token: this.token });
        const lines = text.split('\n');
        if (lines.at(-1) === '') lines.pop();
        const out = lines.map((line) => ({ text: line, stderr: stream === 'stderr' }));
        if (blob.truncated) out.push({ text: `(${stream} was truncated by the machine)`, stderr: true });
        return out;
      } catch (e) {
        return [{ text: `(${stream} could not be read: ${describeError(e)})`, stderr: true }];
      }
    };
    const [stdout, stderr] = await Promise.all([read('stdout'), read('stderr')]);
    this.loading.delete(lease);
    if (generation !== this.generation || log.final) return;
    log.final = true;
    log.lines = [];
    log.partial = { stdout: '', stderr: '' };
    log.dropped = 0;
    for (const line of [...stdout, ...stderr]) this.push(log, line.text, line.stderr);
    if (result.message && result.status !== 'succeeded') {
      this.push(log, `(${result.status}: ${result.message})`, true);
    }
    this.scheduleRender();
  }

  private push(log: LeaseLog, text: string, stderr: boolean): void {
    log.lines.push({ text, stderr });
    if (log.lines.length > kLinesPerLeaseMax) {
      log.lines.shift();
      ++log.dropped;
    }
  }

  private renderTasks(): void {
    const tasks = this.job?.tasks ?? [];
    fillTable(
      byId<HTMLTableElement>('job-tasks'),
      tasks.map((t) => {
        const result = t.lease !== 0 ? this.results.get(t.lease) : undefined;
        let result_text = '—';
        if (result) {
          result_text = `${result.status}, exit ${result.exit_code}` +
            (result.term_signal ? `, signal ${result.term_signal}` : '') +
            (result.wall_ms !== undefined ? `, ${(result.wall_ms / 1000).toFixed(1)} s` : '');
        } else if (result === null) {
          result_text = 'no result';
        }
        return el(
          'tr',
          { 'data-task': t.index, 'data-lease': t.lease || null },
          td(t.index, 'num'),
          el('td', { class: 'task-state' }, el('span', { class: 'badge', 'data-state': t.state }, t.state)),
          td(t.attempts, 'num'),
          td(t.machine || '—', 'num'),
          td(t.lease || '—', 'num'),
          td(result_text, result ? `result result-${result.status}` : 'result'),
        );
      }),
      'This job has no tasks.',
    );
  }

  // Log output can come fast: render at most once per frame.
  private scheduleRender(): void {
    if (this.render_pending) return;
    this.render_pending = true;
    requestAnimationFrame(() => {
      this.render_pending = false;
      this.renderLogs();
    });
  }

  private renderLogs(): void {
    const pre = this.logs_pre;
    const at_bottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    const entries = [...this.logs.entries()].sort(([la, a], [lb, b]) => a.task - b.task || la - lb);
    const nodes: Node[] = [];
    const line = (task: number, text: string, stderr: boolean) => {
      const content = `[task ${task}] ${text}\n`;
      nodes.push(stderr ? el('span', { class: 'stderr' }, content) : document.createTextNode(content));
    };
    for (const [, log] of entries) {
      if (log.dropped > 0) line(log.task, `(${log.dropped} earlier lines not shown)`, true);
      for (const l of log.lines) line(log.task, l.text, l.stderr);
      if (log.partial.stdout) line(log.task, log.partial.stdout, false);
      if (log.partial.stderr) line(log.task, log.partial.stderr, true);
    }
    pre.replaceChildren(...nodes);
    if (at_bottom) pre.scrollTop = pre.scrollHeight;
  }
}

// An argument as a shell would need it typed (for showing the command only).
function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

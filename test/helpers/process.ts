import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const BIN = path.resolve('bin/switchboard.js');

export interface SwitchboardProcess {
  readonly child: ChildProcess;
  /** The API URL from the "switchboard started" line (undefined for roles without the api). */
  readonly url: string | undefined;
  readonly output: () => string;
  readonly exit: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `switchboard <args>` as a user would, and waits for its "switchboard started" log line
 * (logged at info). A process that has not printed it within `startTimeoutMs` is killed, not left
 * running: a leftover keeps consuming and takes CPU from every later test and bench.
 */
export async function spawnSwitchboard(
  env: Record<string, string>,
  args = ['start'],
  startTimeoutMs = 20_000,
): Promise<SwitchboardProcess> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const started = new Promise<string | undefined>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no start line in ${startTimeoutMs} ms (pid ${child.pid} killed):\n${out}`));
    }, startTimeoutMs);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes('"msg":"switchboard started"'));
      if (line) {
        clearTimeout(timer);
        resolve(/"url":"(http:\/\/[^"]+)"/.exec(line)?.[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before starting:\n${out}`));
    });
  });
  const url = await started;
  return {
    child,
    url,
    output: () => out,
    exit,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exit;
    },
  };
}

/** Runs a command to its end; resolves with its exit code and output. */
export function runSwitchboard(
  env: Record<string, string>,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

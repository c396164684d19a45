/**
 * What the `step` CLI prints when a command fails. Three kinds, told apart so that each reader gets
 * what they need: a user's mistake (StepError) is one line saying what to do; a Node system error
 * (ENOENT, ENOSPC, EACCES, ...) is one line naming the path and the remedy; anything else is a bug
 * in this program, printed with its whole stack and a request to report it.
 */
import { StepError } from '../engine/errors.js';
import { UsageError } from './cli-args.js';

/** Node's system errors carry `code` (ENOENT, ...) and, for file operations, `path` and `syscall`. */
interface SystemError extends Error {
  code: string;
  path?: string;
  dest?: string;
  syscall?: string;
}

export function isSystemError(e: unknown): e is SystemError {
  return e instanceof Error && typeof (e as Partial<SystemError>).code === 'string' && /^E[A-Z0-9]+$/.test((e as SystemError).code);
}

/** What each common code means for the user, and what to do about it (`{path}` is the file). */
const SYSTEM_ERRORS: Record<string, string> = {
  ENOENT: '{path} does not exist; check the path (and that its parent folder exists)',
  ENOTDIR: 'a part of {path} is a file, not a folder; check the path',
  EISDIR: '{path} is a folder where a file was expected; give a file path',
  EEXIST: '{path} already exists; remove it or choose another name',
  ENOSPC: 'no space left on the device holding {path}; free some space or write elsewhere',
  EDQUOT: 'disk quota exceeded while writing {path}; free some space or write elsewhere',
  EACCES: 'permission denied for {path}; check its permissions or choose another place',
  EPERM: 'operation not permitted on {path}; check its permissions or choose another place',
  EROFS: '{path} is on a read-only file system; write somewhere writable',
  EMFILE: 'too many open files while opening {path}; raise the limit (ulimit -n) or close other programs',
  ENAMETOOLONG: 'the path {path} is too long; choose a shorter name',
  ENOTEMPTY: '{path} is a folder that is not empty; remove it or choose another name',
  EBUSY: '{path} is busy (in use by another process); retry when it is free',
  EIO: 'input/output error on {path}; the disk may be failing',
};

/** One line for a Node system error: the path, what went wrong, what to do. */
export function describeSystemError(e: SystemError): string {
  const path = e.path ?? e.dest ?? '(unknown path)';
  const template = SYSTEM_ERRORS[e.code];
  const what = template ? template.replace('{path}', path) : `${e.code} on ${path}${e.syscall ? ` (${e.syscall})` : ''}: ${e.message}`;
  return `${what} [${e.code}${e.syscall ? ` in ${e.syscall}` : ''}]`;
}

export interface FailureReport {
  /** What goes to stderr (ends with a newline). */
  text: string;
  /** 2: the command line was wrong; 1: anything else. */
  exitCode: number;
}

/** What the CLI prints for a failed command, and its exit code. */
export function describeFailure(e: unknown): FailureReport {
  if (e instanceof UsageError) return { text: `${e.message}\n`, exitCode: 2 };
  // messages that already name their command ("step train: ...") are not prefixed twice
  if (e instanceof StepError) return { text: `${/^step[ :]/.test(e.message) ? '' : 'step: '}${e.message}\n`, exitCode: 1 };
  if (isSystemError(e)) return { text: `step: ${describeSystemError(e)}\n`, exitCode: 1 };
  const stack = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : `thrown value: ${String(e)}`;
  return {
    text: `step: internal error (a bug in step-webgpu, not in your input):\n${stack}\n` +
      'Please report it with the command you ran and the lines above.\n',
    exitCode: 1,
  };
}

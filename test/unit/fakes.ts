// In-memory stand-ins for Vault, a login method and the Docker Engine API (unit tests only; no network).
import type { AuthMethod, LoginContext, LoginResult } from '../../src/vault/auth/method';
import type { VaultCall, VaultClient } from '../../src/vault/client';
import { DockerApi } from '../../src/docker/api';

/** A login method whose answers the test scripts; counts its logins. */
export class FakeAuthMethod implements AuthMethod {
  readonly name = 'approle';
  readonly mount = 'auth/approle';
  logins = 0;
  readonly contexts: LoginContext[] = [];

  constructor(
    public answer: (n: number) => Promise<LoginResult> | LoginResult = (n) => loginOf(`hvs.fake-token-${n}`),
  ) {}

  async login(context: LoginContext): Promise<LoginResult> {
    this.logins++;
    this.contexts.push(context);
    return this.answer(this.logins);
  }

  hint(reason: string): string {
    return `fake-hint-about(${reason})`;
  }
}

export function loginOf(token: string, ttlSeconds = 0, renewable = false, policies: string[] = ['dso']): LoginResult {
  return { token, ttlSeconds, renewable, policies };
}

/** A VaultClient with only `call`, answering from a handler; every call is recorded. */
export interface FakeVault {
  client: VaultClient;
  calls: VaultCall[];
  callsTo(path: string): VaultCall[];
}

export function fakeVault(handler: (call: VaultCall) => unknown | Promise<unknown>): FakeVault {
  const calls: VaultCall[] = [];
  const client = {
    async call<T>(call: VaultCall): Promise<T> {
      calls.push(call);
      return (await handler(call)) as T;
    },
  };
  return { client: client as unknown as VaultClient, calls, callsTo: (path) => calls.filter((c) => c.path === path) };
}

/**
 * The Docker Engine API client with its requests answered by `answer` (path split into
 * decoded parts, query, body); a rejection with `status` is the engine's refusal.
 */
export function fakeEngine(
  answer: (method: string, parts: string[], query: URLSearchParams, body: unknown) => unknown,
): DockerApi {
  return Object.assign(new DockerApi('/nonexistent/docker.sock'), {
    request: async (method: string, url: string, body?: unknown) => {
      const route = new URL(url, 'http://engine');
      const parts = route.pathname.split('/').slice(1).map(decodeURIComponent);
      return answer(method, parts, route.searchParams, body);
    },
  });
}

/** The engine's "no such object" refusal. */
export function engineAbsent(what: string): Promise<never> {
  return Promise.reject(Object.assign(new Error(`${what} not found`), { status: 404 }));
}

// In-memory stand-ins for Vault and a login method (unit tests only; no network).
import type { AuthMethod, LoginContext, LoginResult } from '../../src/vault/auth/method';
import type { VaultCall, VaultClient } from '../../src/vault/client';

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

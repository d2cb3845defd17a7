// Structured logs: one JSON object per line; credential-named fields never written.
import { expect } from 'chai';
import { logLine } from '../../src/log';
import { capturingLogger } from './helpers';

const CANARY = 'log-canary-value-3b9e';

describe('createLogger', () => {
  it('writes one JSON object per line with level, message, timestamp and fields', () => {
    const { logger, records } = capturingLogger('info');
    logger.info('GetSecret', { service: 'web', secret: 'db_password', path: 'secret/data/app/db', outcome: 'ok' });
    const [line] = records();
    expect(line).to.include({
      level: 'info',
      message: 'GetSecret',
      service: 'web',
      secret: 'db_password',
      path: 'secret/data/app/db',
      outcome: 'ok',
    });
    expect(line.timestamp).to.be.a('string');
  });

  it('drops fields named value, token, client_token, secret_id, password, jwt, X-Vault-Token, data and auth', () => {
    const { logger, lines, records } = capturingLogger('debug');
    const forbidden = [
      'value',
      'token',
      'client_token',
      'secret_id',
      'password',
      'jwt',
      'X-Vault-Token',
      'data',
      'auth',
    ];
    const fields: Record<string, unknown> = { service: 'web' };
    forbidden.forEach((name, i) => (fields[name] = `${CANARY}-${i}`));
    logger.info('something happened', fields);
    const [line] = records();
    for (const name of forbidden) expect(line, name).to.not.have.property(name);
    expect(line.service).to.equal('web');
    expect(lines.join('\n')).to.not.include(CANARY);
  });

  it('drops them in nested objects too, keeping the rest', () => {
    const { logger, lines, records } = capturingLogger('debug');
    logger.info('nested', { request: { path: 'secret/data/x', headers: { 'X-Vault-Token': CANARY }, token: CANARY } });
    const [line] = records();
    expect(line.request).to.deep.equal({ path: 'secret/data/x', headers: {} });
    expect(lines.join('\n')).to.not.include(CANARY);
  });

  it('drops them at any depth, inside arrays too', () => {
    const { logger, lines, records } = capturingLogger('debug');
    logger.info('deep', {
      a: { b: { c: { d: { e: { f: { token: CANARY, keep: 1 } } } } } },
      list: [{ password: CANARY, name: 'x' }],
    });
    const [line] = records();
    expect(line.a).to.deep.equal({ b: { c: { d: { e: { f: { keep: 1 } } } } } });
    expect(line.list).to.deep.equal([{ name: 'x' }]);
    expect(lines.join('\n')).to.not.include(CANARY);
  });

  it('writes a line that cannot be serialized (a cycle) without its fields, never throwing', () => {
    const { logger, records } = capturingLogger('debug');
    const cyclic: Record<string, unknown> = { name: 'x' };
    cyclic.self = cyclic;
    logger.info('cycle', { cyclic });
    logLine(logger, 'info', 'cycle', { cyclic });
    expect(records().map((r) => [r.message, r.logError])).to.deep.equal([
      ['cycle', 'log fields not serializable'],
      ['cycle', 'log fields not serializable'],
    ]);
  });

  it('drops them whatever their case', () => {
    const { logger, lines } = capturingLogger('debug');
    logger.warn('x', { Value: CANARY, TOKEN: CANARY, Secret_ID: CANARY, Password: CANARY, JWT: CANARY });
    expect(lines).to.have.length(1);
    expect(lines[0]).to.not.include(CANARY);
  });

  it('keeps the secret name field (secret), which is not a value', () => {
    const { logger, records } = capturingLogger('debug');
    logger.info('x', { secret: 'db_password' });
    expect(records()[0].secret).to.equal('db_password');
  });

  it('drops them when the fields are passed as the log object itself', () => {
    const { logger, lines } = capturingLogger('debug');
    logger.log({ level: 'info', message: 'x', token: CANARY, secret_id: CANARY });
    expect(lines).to.have.length(1);
    expect(lines[0]).to.not.include(CANARY);
  });

  it('honours the level', () => {
    const { logger, records } = capturingLogger('warn');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(records().map((r) => r.message)).to.deep.equal(['w', 'e']);
  });
});

describe("logLine (the GetSecret line, without winston's pipeline)", () => {
  it('writes the same line as logger.info, less the timestamp', () => {
    const { logger, records } = capturingLogger('info');
    const fields = {
      service: 'web',
      secret: 'db_password',
      path: 'secret/data/app/db',
      outcome: 'ok',
      durationMs: 1.25,
    };
    logger.info('GetSecret', fields);
    logLine(logger, 'info', 'GetSecret', fields);
    const [viaWinston, fast] = records();
    expect(fast.timestamp).to.be.a('string');
    delete viaWinston.timestamp;
    delete fast.timestamp;
    expect(fast).to.deep.equal(viaWinston);
  });

  it('drops credential-named fields at any depth', () => {
    const { logger, lines, records } = capturingLogger('info');
    logLine(logger, 'warn', 'GetSecret', {
      service: 'web',
      Value: CANARY,
      nested: { deeper: { 'X-Vault-Token': CANARY, ok: true } },
    });
    expect(records()[0]).to.deep.include({ level: 'warn', service: 'web', nested: { deeper: { ok: true } } });
    expect(lines.join('\n')).to.not.include(CANARY);
  });

  it('honours the level and an empty field set', () => {
    const { logger, records } = capturingLogger('warn');
    logLine(logger, 'info', 'hidden', { a: 1 });
    logLine(logger, 'warn', 'shown', {});
    expect(records().map((r) => [r.level, r.message])).to.deep.equal([['warn', 'shown']]);
  });

  it('follows a level changed after lines were written', () => {
    const { logger, records } = capturingLogger('info');
    logLine(logger, 'info', 'before', {});
    logger.level = 'warn';
    logLine(logger, 'info', 'hidden', {});
    logger.level = 'debug';
    logLine(logger, 'info', 'after', {});
    expect(records().map((r) => r.message)).to.deep.equal(['before', 'after']);
  });
});

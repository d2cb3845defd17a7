// Structured logs: one JSON object per line; credential-named fields never written.
import { expect } from 'chai';
import { capturingLogger } from './helpers';

const CANARY = 'log-canary-value-3b9e';

describe('createLogger', () => {
  it('writes one JSON object per line with level, message, timestamp and fields', () => {
    const { logger, records } = capturingLogger('info');
    logger.info('GetSecret', { service: 'web', secret: 'db_password', path: 'secret/data/app/db', outcome: 'ok' });
    const [line] = records();
    expect(line).to.include({ level: 'info', message: 'GetSecret', service: 'web', secret: 'db_password', path: 'secret/data/app/db', outcome: 'ok' });
    expect(line.timestamp).to.be.a('string');
  });

  it('drops fields named value, token, client_token, secret_id, password, jwt, X-Vault-Token, data and auth', () => {
    const { logger, lines, records } = capturingLogger('debug');
    const forbidden = ['value', 'token', 'client_token', 'secret_id', 'password', 'jwt', 'X-Vault-Token', 'data', 'auth'];
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

// Identical concurrent calls share one execution.
import { expect } from 'chai';
import { SingleFlight } from '../../src/singleflight';
import { deferred } from './helpers';

/** Work that counts its runs and settles when the test settles `gate`. */
function gatedWork() {
  const gate = deferred<string>();
  let count = 0;
  const work = () => {
    count++;
    return gate.promise;
  };
  return { gate, work, runs: () => count };
}

describe('SingleFlight', () => {
  it('runs concurrent calls of one key once and gives each caller the result, counting the merged ones', async () => {
    const flights = new SingleFlight<string>();
    const { gate, work, runs } = gatedWork();
    const callers = [flights.run('k', work), flights.run('k', work), flights.run('k', work)];
    gate.resolve('v');
    expect(await Promise.all(callers)).to.deep.equal(['v', 'v', 'v']);
    expect(runs()).to.equal(1);
    expect(flights.merged).to.equal(2);
  });

  it('lets a caller with time left try again when the flight it joined ran out of its own deadline', async () => {
    const flights = new SingleFlight<string>();
    const start = Date.now();
    let runs = 0;
    // The first read started while Vault was slow: it gives up at its deadline, by a timer
    // that may fire when Date.now() still reads a few ms short of it (here 5 ms early).
    const slow = flights.run(
      'k',
      () => new Promise<string>((_, reject) => setTimeout(() => reject(new Error('DSO_TIMEOUT')), 25)),
      start + 30,
    );
    const late = flights.run('k', async () => `fresh-${++runs}`, start + 5_000);
    await slow.then(
      () => expect.fail('the slow flight resolves'),
      (err: Error) => expect(err.message).to.equal('DSO_TIMEOUT'),
    );
    expect(await late).to.equal('fresh-1');
  });

  it('hands an early failure (not a deadline) to every caller without trying again', async () => {
    const flights = new SingleFlight<string>();
    let runs = 0;
    const gate = deferred<string>();
    const first = flights.run('k', () => (runs++, gate.promise), Date.now() + 1_000);
    const second = flights.run('k', async () => `again-${++runs}`, Date.now() + 5_000);
    gate.reject(new Error('not found'));
    await first.catch(() => undefined);
    await second.then(
      () => expect.fail('the joiner resolves'),
      (err: Error) => expect(err.message).to.equal('not found'),
    );
    expect(runs).to.equal(1);
  });

  it('runs different keys separately', async () => {
    const flights = new SingleFlight<string>();
    let runs = 0;
    const [a, b] = await Promise.all([
      flights.run('a', async () => `${++runs}a`),
      flights.run('b', async () => `${++runs}b`),
    ]);
    expect([a, b]).to.deep.equal(['1a', '2b']);
    expect(flights.merged).to.equal(0);
  });

  it('shares a rejection with every waiting caller and frees the key afterwards', async () => {
    const flights = new SingleFlight<string>();
    const { gate, work: failing, runs } = gatedWork();
    const callers = [flights.run('k', failing), flights.run('k', failing)].map((p) =>
      p.then(
        () => expect.fail('should reject'),
        (e: unknown) => e,
      ),
    );
    const boom = new Error('boom');
    gate.reject(boom);
    const errors = await Promise.all(callers);
    expect(errors).to.deep.equal([boom, boom]);
    expect(errors[0]).to.equal(boom);
    expect(runs()).to.equal(1);

    expect(await flights.run('k', async () => 'again')).to.equal('again');
  });

  it('frees the key after success, so a later call runs again', async () => {
    const flights = new SingleFlight<number>();
    let runs = 0;
    await flights.run('k', async () => ++runs);
    expect(await flights.run('k', async () => ++runs)).to.equal(2);
    expect(flights.merged).to.equal(0);
  });

  describe('with a reuse window (a herd arrives over longer than one read takes)', () => {
    it('serves calls that start shortly after a shared call settled, and only then', async () => {
      const flights = new SingleFlight<number>(200);
      let runs = 0;
      const gate = deferred<number>();
      const work = () => {
        runs++;
        return runs === 1 ? gate.promise : Promise.resolve(runs);
      };
      const herd = [flights.run('k', work), flights.run('k', work)];
      gate.resolve(1);
      expect(await Promise.all(herd)).to.deep.equal([1, 1]);
      expect(await flights.run('k', work), 'a straggler of the herd').to.equal(1);
      expect(runs).to.equal(1);
      await new Promise((r) => setTimeout(r, 250));
      expect(await flights.run('k', work), 'after the window: a fresh read').to.equal(2);
    });

    it('never keeps a result nobody shared, nor a failure', async () => {
      const flights = new SingleFlight<number>(10_000);
      let runs = 0;
      await flights.run('k', async () => ++runs);
      expect(await flights.run('k', async () => ++runs), 'one caller: not kept').to.equal(2);
      const gate = deferred<number>();
      const shared = [flights.run('f', () => gate.promise), flights.run('f', () => gate.promise)];
      gate.reject(new Error('boom'));
      await Promise.allSettled(shared);
      expect(await flights.run('f', async () => 7), 'a failure is not kept').to.equal(7);
    });
  });
});

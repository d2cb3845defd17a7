// Root hooks of `make test-cluster` (mocha --require): build the three-manager bed once for
// every cluster suite, and publish the plugin built from plugin/ to the bed's registry the
// way a release does (`make plugin-push` through node 1's engine), as <version> and
// :latest. The bed is removed after the run (and by the Makefile, whatever happens);
// DSOC_KEEP=1 leaves it up to look at.
import { bed, pushPlugin } from './bed';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(900_000);
    let t = Date.now();
    await bed('up');
    console.log(`      (bed: 3 managers up in ${Date.now() - t} ms)`);
    t = Date.now();
    await pushPlugin();
    console.log(`      (plugin built and pushed as :<version> and :latest in ${Date.now() - t} ms)`);
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(300_000);
    if (process.env.DSOC_KEEP !== '1') await bed('down');
  },
};

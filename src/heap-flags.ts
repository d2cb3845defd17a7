// The entrypoint's heap flags (config.json: --max-semi-space-size, --max-old-space-size) keep
// the plugin's memory small; V8 reads them once, when node creates the heap, before any of
// our code runs. Node 20 and 22 also count them in the hash of V8's flags that a code cache
// must match, so with them node rejects the code cache built into its binary and compiles
// every module of its own that the start-up loads (node:net, node:http) from source: 13-21 ms
// of the cold start. Putting the two flags back to their defaults before anything else is
// loaded gives back the hash that cache was built with; the heap keeps the sizes it was
// created with (heap limit 524 MiB and a 2 x 4 MiB young generation, as with the flags
// alone). V8 itself stopped counting memory-tuning flags in that hash (commit 87356585659b,
// in node 24): they change no generated code. Imported first by main.ts, for its side effect.
import { setFlagsFromString } from 'node:v8';

/** The heap flags the entrypoint gives: read when the heap is created, unused after it. */
const HEAP_SIZE_FLAGS = ['--max-semi-space-size', '--max-old-space-size'];

// 0 is V8's default for both ("size it from the machine's memory").
for (const flag of HEAP_SIZE_FLAGS) setFlagsFromString(`${flag}=0`);

// What the tests write to disk (temp folders, the dev servers' logs and configurations under
// .work, test keys and credentials) is removed when the test process exits, even after a
// failure: nothing a run wrote, some of it holding a token or a key, stays on disk.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const written = new Set<string>();
process.on('exit', () => {
  for (const file of written) fs.rmSync(file, { recursive: true, force: true });
});

/** Removes `file` (a folder with what is in it) when the test process exits. */
export function removeAtExit(file: string): string {
  written.add(file);
  return file;
}

/** A new folder in the system's temp folder, removed with its files when the test process exits. */
export function tempDir(prefix: string): string {
  return removeAtExit(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
}

// Credential files on the /etc/dso mount. Errors name the setting and the file, never content.
import * as fs from 'node:fs';
import { DsoError } from '../../errors';

export function readCredentialFile(file: string, setting: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES'
          ? 'is not readable'
          : `cannot be read (${code ?? 'error'})`;
    throw new DsoError(
      'ERR_LOGIN',
      `${setting}: ${file} ${why}; put the credential there (the plugin mounts /etc/dso from the host)`,
    );
  }
  const value = text.trim();
  if (value === '') throw new DsoError('ERR_LOGIN', `${setting}: ${file} is empty`);
  return value;
}

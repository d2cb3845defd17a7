// Lint for src/, test/ and bench/ (make lint, called by make test): typescript-eslint's
// recommended rules, lines of at most 120 columns in src/ (prettier formats to that width;
// long strings and comments it cannot wrap are caught here).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'plugin/', 'node_modules/', '.work/', '.venv/', 'test/support/summary-reporter.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // A handler read by a closure before its one assignment (main.ts) stays a `let`.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Control characters are what references and labels are checked against.
      'no-control-regex': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'max-len': ['error', { code: 120, ignoreUrls: true }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    // Tests and benchmarks poke at loosely typed JSON replies; `any` is allowed there.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);

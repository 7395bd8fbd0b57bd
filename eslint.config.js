// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * Layers point inward: each folder of src/ may import from itself and the folders listed
 * here, nothing else. Outer layers (cli, http, dispatch, services) call use cases; use cases
 * call the job lifecycle, repositories and limits; those call db/. docs/ARCHITECTURE.md draws it.
 */
const USE_CASE_DEPENDENCIES = [
  'auth',
  'config',
  'db',
  'domain',
  'lifecycle',
  'limits',
  'observability',
  'repositories',
];
const MAY_IMPORT = {
  domain: [],
  config: ['domain'],
  db: ['config', 'domain'],
  auth: ['config', 'db', 'domain', 'repositories'],
  repositories: ['auth', 'db', 'domain'],
  lifecycle: ['auth', 'db', 'domain', 'repositories'],
  limits: ['db', 'domain', 'repositories'],
  observability: ['domain', 'lifecycle'],
  usecases: USE_CASE_DEPENDENCIES,
  // Background services and dispatch sit on the use cases, and reach what they reach.
  services: [...USE_CASE_DEPENDENCIES, 'usecases'],
  dispatch: [...USE_CASE_DEPENDENCIES, 'usecases', 'services'],
  http: ['auth', 'config', 'db', 'domain', 'limits', 'observability', 'usecases'],
};
const FOLDERS = [...Object.keys(MAY_IMPORT), 'cli'];

function layerRules() {
  return Object.entries(MAY_IMPORT).map(([folder, allowed]) => ({
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                ...FOLDERS.filter((other) => other !== folder && !allowed.includes(other)).map(
                  (other) => `**/${other}/**`,
                ),
                // The composition root sits above every folder.
                '**/server.js',
                ...(folder === 'domain' ? ['../*'] : []),
              ],
              message:
                `src/${folder}/ may import only from ${allowed.length === 0 ? 'itself' : allowed.join(', ')}: ` +
                'layers point inward (docs/ARCHITECTURE.md).',
            },
          ],
        },
      ],
    },
  }));
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.pie/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's describe/it return promises the runner itself tracks.
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // Fastify hooks are async so that a thrown error becomes the response.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Tests read JSON answers field by field; typing every body would add noise, not safety.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  ...layerRules(),
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // The console's modules run in the browser (docs/CONSOLE.md).
    files: ['console/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
);

export default {
  files: ['native-tests/**/*.test.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx', '--no-warnings=ExperimentalWarning'],
  timeout: '3m',
  workerThreads: false,
  concurrency: 2,
};

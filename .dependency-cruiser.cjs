/**
 * Layer rules of ts/ (see docs/architecture.md): each folder imports values
 * only from folders below it, and nothing imports in a cycle (type-only
 * imports included). Checked by `npm run lint:deps`, part of `npm test` and `npm run lint`.
 */
// Top to bottom. A module may import from its own layer's folder or any layer below.
const layers = [
  ['index', 'demo'],
  ['cli'],
  ['parallel', 'executor'],
  ['manage'],
  ['run'],
  ['cache'],
  ['store'],
  ['task'],
  ['gpu'],
  ['code-identity', 'canonical'],
  ['binding'],
  ['errors', 'describe', 'value', 'shapes'],
];
const folderRe = (f) => (['index', 'describe', 'value', 'shapes'].includes(f) ? `^ts/${f}\\.ts$` : `^ts/${f}/`);
const above = (i) => layers.slice(0, i).flat();

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: split the shared part into a module lower down.',
      from: { path: '^ts/' },
      to: { circular: true },
    },
    ...layers.flatMap((group, i) =>
      i === 0
        ? []
        : group.map((f) => ({
            name: `no-upward-from-${f}`,
            severity: 'error',
            comment: `ts/${f} is below ${above(i).join(', ')}: it must not import from them.`,
            from: { path: folderRe(f) },
            // Type-only imports vanish at run time (a job's type, a plan's shape).
            to: { path: above(i).map(folderRe).join('|'), dependencyTypesNot: ['type-only'] },
          })),
    ),
    {
      name: 'binding-only-through-native',
      severity: 'error',
      comment: 'Only ts/binding/native.ts loads the generated binding.',
      from: { path: '^ts/', pathNot: '^ts/binding/' },
      to: { path: '^ts/binding/binding\\.cjs$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|native-tests|bench)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.cjs', '.d.cts'] },
  },
};

// chunk-memo is an ES module. This CommonJS entry only says how to load it.
'use strict';
const { ChunkMemoError } = (() => {
  class ChunkMemoError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
      this.name = 'ChunkMemoError';
    }
  }
  return { ChunkMemoError };
})();
throw new ChunkMemoError(
  'ERR_REQUIRE_ESM',
  "chunk-memo is an ES module and cannot be loaded with require(): use `import { ChunkCache, run } from 'chunk-memo'` in an ES module, " +
    "or `const { ChunkCache, run } = await import('chunk-memo')` from CommonJS (Node.js 22.12+ also lets require() load ES modules).",
);

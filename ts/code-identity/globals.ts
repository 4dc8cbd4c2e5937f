/** Globals whose use is not reported as a free variable. */

/**
 * Globals that are deterministic enough (or environment plumbing) that using
 * them should not trigger a free-variable warning.
 */
export const KNOWN_GLOBALS: ReadonlySet<string> = new Set([
  // value properties
  'globalThis', 'undefined', 'NaN', 'Infinity',
  // functions
  'isNaN', 'isFinite', 'parseInt', 'parseFloat', 'eval',
  'encodeURI', 'encodeURIComponent', 'decodeURI', 'decodeURIComponent', 'escape', 'unescape',
  // fundamental objects and namespaces
  'Object', 'Function', 'Boolean', 'Symbol', 'Number', 'BigInt', 'Math', 'Date', 'String',
  'RegExp', 'Array', 'JSON', 'Reflect', 'Proxy', 'Intl', 'Atomics', 'Iterator',
  'Promise', 'Map', 'Set', 'WeakMap', 'WeakSet', 'WeakRef', 'FinalizationRegistry',
  // errors
  'Error', 'AggregateError', 'EvalError', 'RangeError', 'ReferenceError', 'SyntaxError',
  'TypeError', 'URIError', 'SuppressedError', 'DOMException',
  // binary data
  'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
  'Int32Array', 'Uint32Array', 'Float16Array', 'Float32Array', 'Float64Array',
  'BigInt64Array', 'BigUint64Array',
  // host (Node / web) APIs
  'console', 'process', 'Buffer', 'require', 'module', 'exports', '__dirname', '__filename',
  'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate',
  'queueMicrotask', 'structuredClone', 'performance', 'crypto', 'fetch', 'atob', 'btoa',
  'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'AbortController', 'AbortSignal',
  'Blob', 'Event', 'EventTarget', 'MessageChannel', 'MessagePort', 'BroadcastChannel',
  // always in scope inside non-arrow functions
  'arguments',
]);

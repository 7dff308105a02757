// Injected into the Edge Function bundles: the Node globals postgres.js uses. Deno gives them to npm
// packages, but once bundled postgres.js is part of the function's own code, where they are not global.
export { Buffer } from "node:buffer";
export { default as process } from "node:process";
export { clearImmediate, setImmediate } from "node:timers";

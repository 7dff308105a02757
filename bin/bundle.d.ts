/** Whether dist/ was built from the sources as they are now (bin/bundle.js). */
export function bundleIsFresh(): boolean;

// Where the browser test finds things. VMPULSE_BIN (default <repo>/bin) holds the Go
// commands (`make build`), CHROMIUM_PATH (default /usr/bin/chromium) the browser.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FRONTEND = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(FRONTEND, '..');
export const BIN = path.resolve(process.env.VMPULSE_BIN || path.join(REPO, 'bin'));
export const DIST = path.resolve(process.env.E2E_DIST || path.join(FRONTEND, 'dist'));
export const RESULTS = path.join(FRONTEND, 'test-results');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

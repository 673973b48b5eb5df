/// <reference types="vitest/config" />
import { defineConfig } from 'vite';

// No React plugin needed: Vite's built-in transform compiles TSX with the automatic
// JSX runtime. `npm run dev` proxies /ws and /config.json to a running relay
// (VMPULSE_RELAY, default http://127.0.0.1:8080, where `make up` serves it) so the page
// behaves as in production.
const relay = process.env.VMPULSE_RELAY ?? 'http://127.0.0.1:8080';

export default defineConfig({
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      '/ws': { target: relay, ws: true },
      '/config.json': { target: relay },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    // e2e/ is Playwright's (npm run test:e2e)
    environment: 'node',
  },
});

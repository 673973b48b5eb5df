// The browser test (npm run test:e2e): Debian's Chromium, never a downloaded browser.
// See e2e/dashboard.spec.ts for what it does and the variables it reads.
import { defineConfig } from '@playwright/test';
import { CHROMIUM } from './e2e/paths';

export default defineConfig({
  testDir: 'e2e',
  testMatch: '*.spec.ts',
  globalSetup: './e2e/global-setup.ts',
  outputDir: 'test-results/playwright',
  // one machine, real processes on free ports: one test at a time
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: !!process.env.CI,
  // the stack (MySQL, Pub/Sub, two routes, an agent at 100 samples/s) shares 2 cores
  timeout: 6 * 60_000,
  expect: { timeout: 30_000 },
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'test-results/report' }]],
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1280, height: 1000 },
    locale: 'es-ES',
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});

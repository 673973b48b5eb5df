// Builds the dashboard once before the browser test (E2E_NO_BUILD=1 keeps an existing
// dist/; E2E_DIST serves another build, e.g. an older one to compare render cost).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FRONTEND, RESULTS } from './paths';

export default function globalSetup(): void {
  fs.mkdirSync(RESULTS, { recursive: true });
  for (const f of fs.readdirSync(RESULTS)) if (f.endsWith('.log')) fs.rmSync(path.join(RESULTS, f));
  if (process.env.E2E_DIST) return;
  if (process.env.E2E_NO_BUILD === '1' && fs.existsSync(path.join(FRONTEND, 'dist', 'index.html'))) return;
  const b = spawnSync('npm', ['run', 'build'], { cwd: FRONTEND, encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`npm run build failed:\n${b.stdout}\n${b.stderr}`);
}

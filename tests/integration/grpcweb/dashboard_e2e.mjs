// The dashboard end to end in headless Chromium (playwright-core with the
// Debian chromium), against a real coordinator serving it (--dashboard-dir)
// and a real worker (see dashboard_test.sh).
//   node dashboard_e2e.mjs URL MODEL_DIGEST RECIPE_FILE SIGNAL_FILE OUT_DIR PROTO
// Submits two jobs through the form (no worker yet), records every value the
// first job's progress bar takes (a MutationObserver in the page), writes
// SIGNAL_FILE so the script starts the worker, cancels the second job with
// its button while the first runs, then opens the first job's page: stage
// timeline, report tables and the Pareto plot; screenshots go to OUT_DIR.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { SqueezeApi, loadTypes } from '../../../client/web/src/api.js';

// playwright-core is one of client/web's npm packages.
const { chromium } = createRequire(new URL('../../../client/web/package.json', import.meta.url))('playwright-core');
const [url, digest, recipeFile, signalFile, outDir, protoPath] = process.argv.slice(2);
const recipe = fs.readFileSync(recipeFile, 'utf8');
const api = new SqueezeApi(loadTypes(fs.readFileSync(protoPath, 'utf8')), url);
let checks = 0;
function check(cond, what) {
  if (!cond) throw new Error(`FAIL: ${what}`);
  checks++;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(60000);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  await page.goto(url);
  await page.locator('#conn', { hasText: 'connected' }).waitFor();

  async function submit(labels, priority) {
    await page.fill('[data-testid=submit-recipe]', recipe);
    await page.fill('[data-testid=submit-model]', digest);
    await page.fill('[data-testid=submit-priority]', String(priority));
    await page.fill('[data-testid=submit-labels]', labels);
    await page.click('[data-testid=submit]');
    const row = page.locator('tr[data-job-id]', { hasText: labels });
    await row.waitFor();
    return row.getAttribute('data-job-id');
  }
  const run = Date.now().toString(36);  // labels unique to this run
  const first = await submit(`e2e=first-${run}`, 0);
  const second = await submit(`e2e=second-${run}`, -1);
  check(first && second && first !== second, `two jobs submitted (${first}, ${second})`);
  const stateOf = (id) => page.locator(`tr[data-job-id="${id}"] [data-testid=state]`);
  check((await stateOf(first).textContent()) === 'QUEUED', 'first job QUEUED before any worker');

  // Every distinct value of the first job's bar, as the page renders it.
  await page.evaluate((id) => {
    window.__bar = [];
    const record = () => {
      const b = document.querySelector(`tr[data-job-id="${id}"] [data-testid=progress]`);
      if (!b) return;
      const v = `${b.getAttribute('data-percent')}|${b.getAttribute('data-label')}`;
      if (window.__bar.at(-1) !== v) window.__bar.push(v);
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true });
    record();
  }, first);
  fs.writeFileSync(signalFile, 'start the worker\n');

  await page.locator(`tr[data-job-id="${first}"] [data-testid=state]`, { hasText: 'RUNNING' }).waitFor();
  await page.click(`tr[data-job-id="${second}"] [data-testid=cancel]`);
  await stateOf(second).filter({ hasText: 'CANCELLED' }).waitFor();
  check((await api.getJob(second)).state === 'CANCELLED', 'second job CANCELLED on the coordinator');
  await stateOf(first).filter({ hasText: 'SUCCEEDED' }).waitFor({ timeout: 90000 });

  const bar = await page.evaluate(() => window.__bar);
  console.log(`progress bar values: ${bar.join('  ')}`);
  // "Moves": while the job ran the bar showed at least two different stage
  // progress states (percent and label from PROGRESS events, not the
  // queued / running / done placeholders), then ended full.
  const inProgress = new Set(bar.filter((v) => !/\|(queued|running|done)$/.test(v)));
  check(inProgress.size >= 2, `the bar showed at least two different in-progress values (${[...inProgress].join(', ')})`);
  check(bar.at(-1) === '100.0|done', 'the bar ends full');
  await page.screenshot({ path: path.join(outDir, 'dashboard-jobs.png'), fullPage: true });

  // The job page.
  await page.click(`tr[data-job-id="${first}"] a`);
  await page.locator('[data-testid=job-page]').waitFor();
  // The timeline renders after the job page (its own fetch): wait for its
  // first stage before counting, or a loaded machine counts 0.
  await page.locator('[data-testid=timeline] [data-testid=stage]').first().waitFor();
  const stages = await page.locator('[data-testid=timeline] [data-testid=stage]').count();
  check(stages >= 2, `the timeline shows the stages (${stages})`);
  await page.locator('[data-testid=report-tables]').waitFor();
  const tables = await page.locator('[data-testid=report-table]').count();
  check(tables >= 3, `the report is shown as tables (${tables})`);
  const svg = await api.artifactFile(first, 'pareto.svg');
  if (svg) {
    const img = page.locator('img[data-testid=pareto]');
    await img.waitFor();
    await page.waitForFunction(() => {
      const i = document.querySelector('img[data-testid=pareto]');
      return i && i.complete && i.naturalWidth > 0;
    });
    check(true, 'pareto plot rendered');
  } else {
    console.log('note: this artifact has no pareto.svg (report without a cost section)');
  }
  await page.locator('[data-testid=cancel]').first().waitFor();
  check(await page.locator('[data-testid=cancel]').first().isDisabled(), 'cancel is disabled for a finished job');
  const shot = path.join(outDir, 'dashboard-job.png');
  await page.screenshot({ path: shot, fullPage: true });
  check(pageErrors.length === 0, `no errors in the page: ${pageErrors.join('; ')}`);
  console.log(`dashboard_e2e: ${checks} checks passed`);
  console.log(`screenshot: ${shot}`);
  console.log(`screenshot: ${path.join(outDir, 'dashboard-jobs.png')}`);
} finally {
  await browser.close();
}

// Drives /docs/ (Swagger UI) in headless Chromium like a person: "Try it out" on
// POST /login/, then on GET /profile/ and GET /sessions/ with the cookie the browser stored.
// Usage: BASE=http://127.0.0.1:8000 node scripts/docs-check.mjs   (needs: apt-get install
// chromium; npm install playwright-core; the service running with COOKIE_SECURE=false)
import { chromium } from 'playwright-core';

const base = process.env.BASE || 'http://127.0.0.1:8000';
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 1800 } });
await page.goto(`${base}/docs/`);
await page.waitForSelector('.opblock');
const ops = await page.$$eval('.opblock-summary-path', els => els.map(e => e.textContent.trim()));
console.log('operations listed:', ops.join(' '));

async function tryIt(id, body) {
  const block = page.locator(`#${id}`);
  await block.locator('.opblock-summary').click();
  await block.locator('button.try-out__btn').click();
  if (body) await block.locator('textarea.body-param__text').fill(body);
  await block.locator('button.execute').click();
  const row = block.locator('.responses-table.live-responses-table .response').first();
  await row.waitFor();
  const status = (await row.locator('.response-col_status').textContent()).trim();
  const text = (await row.locator('.response-col_description pre').first().textContent()).trim();
  console.log(`${id}: ${status} ${text.replace(/\s+/g, ' ').slice(0, 160)}`);
  return status;
}

const login = await tryIt('operations-sessions-login', '{"username": "alice"}');
const profile = await tryIt('operations-sessions-profile');
const list = await tryIt('operations-sessions-list');
const cookies = await page.context().cookies();
console.log('browser cookies:', cookies.map(c => `${c.name} httpOnly=${c.httpOnly} sameSite=${c.sameSite}`).join(', '));
await page.screenshot({ path: process.env.SHOT || '/tmp/docs.png', fullPage: false });
await browser.close();
if (login !== '200' || profile !== '200' || list !== '200') process.exit(1);

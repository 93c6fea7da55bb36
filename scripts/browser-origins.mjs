// A real browser (Debian's headless Chromium, driven through playwright-core) on other
// origins than the service's: a page from an allowed origin logs in, reads the profile and
// logs out with `credentials: "include"`; a page from an origin not allowed cannot read
// anything (the browser blocks it: no CORS headers) and every write it makes -- fetch, a
// form post -- is refused by the service (403), so nothing changes in the store.
//
// Two deployment shapes, each on a fresh profile (--user-data-dir):
//   same-site: service http://localhost:S, pages http://localhost:A (allowed) and
//              http://localhost:B (not allowed); cookie SameSite=Lax, Secure (Chromium
//              treats http://localhost as a secure context). Ports do not make sites, so the
//              browser sends the Lax cookie with B's requests too: only the service's
//              Origin check stands between B and the session.
//   cross-site: service http://localhost:S, pages http://127.0.0.1:A and http://127.0.0.1:B;
//              COOKIE_SAMESITE=none, Secure. Chromium blocks third-party cookies by default
//              (the cookie is dropped with reason "UserPreferences"), so this profile allows
//              them, as a user may: the browser then sends the cookie with every cross-site
//              request, B's included -- the worst case for the service.
//
// usage: SERVICE_BIN=target/debug/upstash-sessions node scripts/browser-origins.mjs
// env:   PORT_BASE (default 8131: uses PORT_BASE..PORT_BASE+5), CHROMIUM (default
//        /usr/bin/chromium). Exit code 0 when every expectation held.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// playwright-core from PLAYWRIGHT_CORE (a path; scripts/browser-origins.sh installs it under
// target/), else from node's usual resolution.
const { chromium } = await import(process.env.PLAYWRIGHT_CORE || 'playwright-core');
const bin = process.env.SERVICE_BIN || 'target/debug/upstash-sessions';
const portBase = Number(process.env.PORT_BASE || 8131);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
let failures = 0;

function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures += 1;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startService(port, env) {
  const child = spawn(bin, [], {
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), WORKERS: '1',
           RUST_LOG: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; i < 150; i += 1) {
    if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode})`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) return child;
    } catch { /* not yet */ }
    await sleep(100);
  }
  throw new Error('the service did not start');
}

// A page server: every path answers the same empty HTML page.
function startPages(port) {
  const server = http.createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>app</title><form id=f method=post></form>');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

// What the store holds, as the service's own counters tell it.
async function storeState(service) {
  const text = await (await fetch(`${service}/metrics`)).text();
  const pick = (name) => text.split('\n').filter((l) => l.startsWith(name)).join(' | ');
  return [pick('sessions_created_total'), pick('sessions_ended_total'), pick('sessions_live')].join(' / ');
}

async function refusedCount(service) {
  const text = await (await fetch(`${service}/metrics`)).text();
  return text.split('\n')
    .filter((l) => l.startsWith('http_requests_total{') && l.includes('status="403"'))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

// Runs `fn(service)` inside `page`: the request comes from the page's origin.
function inPage(page, service, fn) {
  return page.evaluate(fn, service);
}

async function scenario({ name, servicePort, appHost, appPort, evilPort, env, thirdPartyCookies }) {
  console.log(`== ${name}`);
  const service = `http://localhost:${servicePort}`;
  const app = `http://${appHost}:${appPort}`;
  const evil = `http://${appHost}:${evilPort}`;
  const child = await startService(servicePort, { CORS_ALLOWED_ORIGINS: app, ...env });
  const pages = [await startPages(appPort), await startPages(evilPort)];
  const profileDir = mkdtempSync(join(tmpdir(), 'chromium-origins-'));
  if (thirdPartyCookies) {
    mkdirSync(join(profileDir, 'Default'));
    writeFileSync(join(profileDir, 'Default', 'Preferences'),
                  JSON.stringify({ profile: { cookie_controls_mode: 0 } }));
  }
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await context.newPage();
    await page.goto(`${app}/`);

    // The allowed origin logs in and reads the profile.
    const login = await inPage(page, service, async (s) => {
      const r = await fetch(`${s}/login/`, {
        method: 'POST', credentials: 'include',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'alice' }),
      });
      return { status: r.status, body: await r.json(), requestId: r.headers.get('x-request-id') };
    });
    check(login.status === 200, `${app} logs in (${login.status})`);
    check(!!login.requestId, `${app} can read X-Request-Id (exposed)`);
    const cookies = await context.cookies(service);
    console.log(`     browser cookie: ${cookies.map((c) => `${c.name} sameSite=${c.sameSite} secure=${c.secure} httpOnly=${c.httpOnly}`).join(', ')}`);
    const readProfile = (p) => inPage(p, service, async (s) => {
      try {
        const r = await fetch(`${s}/profile/`, { credentials: 'include' });
        return { status: r.status, body: await r.json() };
      } catch (e) {
        return { blocked: String(e) };
      }
    });
    const profile = await readProfile(page);
    check(profile.status === 200 && profile.body.session_data.user === 'alice'
          && profile.body.session_id === login.body.session_id,
          `${app} reads the profile with credentials: "include" (${JSON.stringify(profile).slice(0, 80)})`);

    // An origin not allowed: the browser blocks its reads, the service refuses its writes.
    const before = await storeState(`http://127.0.0.1:${servicePort}`);
    const refusedBefore = await refusedCount(`http://127.0.0.1:${servicePort}`);
    const other = await context.newPage();
    // Which of its requests the browser attached the session cookie to.
    const withCookie = [];
    const cdp = await context.newCDPSession(other);
    await cdp.send('Network.enable');
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      const sent = (e.associatedCookies || []).some((c) => c.cookie.name === 'session_id' && c.blockedReasons.length === 0);
      if (sent) withCookie.push(e.requestId);
    });
    await other.goto(`${evil}/`);
    const stolen = await readProfile(other);
    check(!!stolen.blocked, `${evil} cannot read the profile (${JSON.stringify(stolen).slice(0, 80)})`);
    const writes = await inPage(other, service, async (s) => {
      const id = 'ignored';
      const attempts = [
        [`${s}/logout/`, { method: 'POST' }],
        [`${s}/logout/all/`, { method: 'POST' }],
        [`${s}/login/`, { method: 'POST', body: '{"username":"mallory"}', headers: { 'Content-Type': 'text/plain' } }],
        [`${s}/login/`, { method: 'POST', body: '{"username":"mallory"}', headers: { 'Content-Type': 'application/json' } }],
        [`${s}/sessions/${id}`, { method: 'DELETE' }],
      ];
      const out = [];
      for (const [url, init] of attempts) {
        try {
          const r = await fetch(url, { ...init, credentials: 'include' });
          out.push(`${init.method} ${url}: read ${r.status}`);
        } catch {
          out.push(`${init.method} ${url}: blocked`);
        }
        // no-cors: the browser sends it and hides the answer, like a form or an <img>.
        try {
          await fetch(url, { ...init, mode: 'no-cors', credentials: 'include' });
        } catch { /* opaque either way */ }
      }
      return out;
    });
    check(writes.every((w) => w.endsWith('blocked')), `${evil} reads no write's answer: ${writes.join('; ')}`);
    // A classic form post, top-level navigation with the cookie.
    await other.evaluate((s) => {
      const f = document.getElementById('f');
      f.action = `${s}/logout/all/`;
      f.submit();
    }, service);
    await other.waitForURL(`${service}/logout/all/`);
    const formAnswer = await other.textContent('body');
    check(formAnswer.includes('Cross-site request refused'), `a form post from ${evil} is refused (${formAnswer.trim().slice(0, 70)})`);
    check(withCookie.length >= 5, `the browser sent the session cookie with ${withCookie.length} of ${evil}'s requests: only the service stood in the way`);
    const refused = (await refusedCount(`http://127.0.0.1:${servicePort}`)) - refusedBefore;
    check(refused >= 5, `the service refused ${refused} cross-site writes with 403`);
    const after = await storeState(`http://127.0.0.1:${servicePort}`);
    check(after === before, `nothing changed in the store (${after})`);

    // The allowed origin still has its session, and logs out.
    const again = await readProfile(page);
    check(again.status === 200 && again.body.session_id === login.body.session_id,
          `${app}'s session survived (${again.status})`);
    const logout = await inPage(page, service, async (s) => {
      const r = await fetch(`${s}/logout/`, { method: 'POST', credentials: 'include' });
      return { status: r.status, body: await r.json() };
    });
    check(logout.status === 200, `${app} logs out (${logout.status})`);
    const gone = await readProfile(page);
    check(gone.status === 403, `after logout the profile is 403 (cookie cleared: ${gone.status})`);
  } finally {
    await context.close();
    rmSync(profileDir, { recursive: true, force: true });
    for (const s of pages) s.close();
    child.kill('SIGTERM');
  }
}

try {
  await scenario({
    name: 'same-site, cross-origin (SameSite=Lax)', servicePort: portBase, appHost: 'localhost',
    appPort: portBase + 1, evilPort: portBase + 2, env: {},
  });
  await scenario({
    name: 'cross-site (SameSite=None)', servicePort: portBase + 3, appHost: '127.0.0.1',
    appPort: portBase + 4, evilPort: portBase + 5, env: { COOKIE_SAMESITE: 'none' },
    thirdPartyCookies: true,
  });
} catch (e) {
  console.log(`FAIL ${e.stack || e}`);
  failures += 1;
}
console.log(failures ? `${failures} expectation(s) failed` : 'every expectation held');
process.exit(failures ? 1 : 0);

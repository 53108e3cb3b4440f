// One browser scenario on rust-api-axum's documentation pages, in the system's headless Chromium driven by
// playwright-core (nothing is downloaded). crates/server/tests/api/browser.rs starts the real server and the
// real test OpenID provider and runs this once per scenario:
//
//   node tools/browser/docs.mjs SCENARIO --server URL [--idp URL] --screenshots DIR [--user NAME]
//
// SCENARIO: swagger-authorize | swagger-offline | redoc-offline | rapidoc-offline
//
// Every request to another origin than the server's (and, for swagger-authorize, the provider's) is aborted
// and listed in `blocked`: the pages must work on a machine without internet access. The script prints exactly
// one JSON line to stdout, {"ok":true,...} with what it observed or {"ok":false,"error":...}, writes a
// screenshot of the page to DIR (also when it fails, so a failure can be looked at) and exits 0 or 1.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

// The summary of resource_v1_create: each page must show it once it has rendered the operations.
const CREATE_SUMMARY = "Creates a resource owned by the caller (the token's subject).";
const READ_SCOPE = 'rust-api-axum-resource-read';
const WRITE_SCOPE = 'rust-api-axum-resource-write';
// Generous for a busy 2-core machine; a step that takes this long has failed.
const STEP_TIMEOUT_MS = 30_000;

const { positionals, values: options } = parseArgs({
  allowPositionals: true,
  options: {
    server: { type: 'string' },
    idp: { type: 'string' },
    screenshots: { type: 'string' },
    user: { type: 'string', default: 'ada' },
  },
});
const scenario = positionals[0];
const server = new URL(options.server ?? 'http://invalid.invalid').origin;
const allowed = new Set([server]);
if (options.idp) allowed.add(new URL(options.idp).origin);

// What our pages did, and apart from it what the provider's login and consent pages did (they are not ours:
// oidc-provider's development pages load a web font from Google, which the block refuses).
const observed = {
  scenario, blocked: [], pageErrors: [], consoleErrors: [], provider: { blocked: [], pageErrors: [], consoleErrors: [] },
};

const ours = (url) => { try { return new URL(url).origin === server; } catch { return true; } };
const record = (url) => (ours(url) ? observed : observed.provider);

function watch(page) {
  page.on('pageerror', (error) => record(page.url()).pageErrors.push(`${page.url()}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') record(page.url()).consoleErrors.push(`${page.url()}: ${message.text()}`);
  });
}

async function screenshot(page, name) {
  if (!options.screenshots || !page || page.isClosed()) return;
  fs.mkdirSync(options.screenshots, { recursive: true });
  const file = path.resolve(options.screenshots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  observed.screenshot = file;
}

// Waits until the operation's summary is visible: the page fetched the document and rendered the operations.
async function rendered(page) {
  await page.getByText(CREATE_SUMMARY).filter({ visible: true }).first().waitFor({ timeout: STEP_TIMEOUT_MS });
}

async function offline(page, pagePath) {
  const response = await page.goto(`${server}${pagePath}`, { waitUntil: 'load' });
  if (response?.status() !== 200) throw new Error(`${pagePath} answered ${response?.status()}`);
  await rendered(page);
  // Let late scripts (workers, fonts, lazy chunks) fail now if they are going to.
  await page.waitForLoadState('networkidle', { timeout: STEP_TIMEOUT_MS });
}

// Runs one operation in Swagger UI with "Try it out" and returns the API's answer as the page received it.
async function tryItOut(page, operationId, { body } = {}) {
  const block = page.locator(`[id$="-${operationId}"].opblock`);
  await block.locator('.opblock-summary').first().click();
  await block.locator('button.try-out__btn').click();
  if (body !== undefined) await block.locator('textarea.body-param__text').fill(JSON.stringify(body));
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(`${server}/api/`) && r.request().method() !== 'OPTIONS',
      { timeout: STEP_TIMEOUT_MS }),
    block.locator('button.execute').click(),
  ]);
  const authorization = await response.request().headerValue('authorization');
  const answer = { status: response.status(), body: await response.json(), bearer: /^Bearer \S+$/.test(authorization ?? '') };
  // Swagger UI shows the same status in its live response table.
  const shown = block.locator('.live-responses-table .response .response-col_status').first();
  await shown.waitFor({ timeout: STEP_TIMEOUT_MS });
  answer.shownStatus = (await shown.innerText()).trim();
  return answer;
}

async function swaggerAuthorize(page, context) {
  await offline(page, '/apidoc/swagger/');
  await page.locator('.auth-wrapper button.authorize').click();
  const modal = page.locator('.modal-ux');
  await modal.waitFor({ timeout: STEP_TIMEOUT_MS });
  // Pick both resource scopes (Swagger UI preselects the configured ones; a click would unselect them).
  for (const scope of [READ_SCOPE, WRITE_SCOPE]) {
    const box = modal.locator(`input[type=checkbox][data-value="${scope}"]`);
    if (!(await box.isChecked())) await modal.locator(`label[for="${await box.getAttribute('id')}"]`).click();
    if (!(await box.isChecked())) throw new Error(`cannot select the scope ${scope}`);
  }
  const [popup] = await Promise.all([
    context.waitForEvent('page', { timeout: STEP_TIMEOUT_MS }),
    modal.locator('.auth-btn-wrapper button.authorize').click(),
  ]);
  watch(popup);
  // The provider's login page (oidc-provider's devInteractions): any password, the login name is the account.
  await popup.locator('input[name=login]').fill(options.user);
  await popup.locator('input[name=password]').fill('any password');
  await popup.locator('button[type=submit]').click();
  // Its consent page, then the redirect to Swagger UI's oauth2-redirect.html, which hands the code back to
  // the opener and closes the window.
  const closed = popup.waitForEvent('close', { timeout: STEP_TIMEOUT_MS });
  await popup.locator('button[type=submit]').click();
  await closed;
  // Authorised, the dialog offers to log out instead of to authorize.
  await modal.locator('button', { hasText: 'Logout' }).waitFor({ timeout: STEP_TIMEOUT_MS });
  observed.authorized = true;
  await modal.locator('button.btn-done').click();

  observed.greeting = await tryItOut(page, 'greeting_v3_get');
  const name = `from the browser ${Date.now()}`;
  observed.created = await tryItOut(page, 'resource_v1_create', { body: { name } });
  observed.list = await tryItOut(page, 'resource_v1_list');
  observed.createdName = name;
  observed.listed = observed.list.body?.resources?.some((resource) => resource.name === name) ?? false;
}

const SCENARIOS = {
  'swagger-authorize': swaggerAuthorize,
  'swagger-offline': (page) => offline(page, '/apidoc/swagger/'),
  'redoc-offline': (page) => offline(page, '/apidoc/redoc'),
  'rapidoc-offline': (page) => offline(page, '/apidoc/rapidoc'),
};

async function main() {
  const run = SCENARIOS[scenario];
  if (!run || !options.server) {
    throw new Error(`usage: docs.mjs ${Object.keys(SCENARIOS).join('|')} --server URL [--idp URL] --screenshots DIR`);
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  observed.browser = `Chromium ${browser.version()}`;
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (allowed.has(new URL(url).origin)) return route.continue();
      let from = '';
      try { from = route.request().frame().url(); } catch { /* a worker's request: count it as ours */ }
      record(from).blocked.push(url);
      return route.abort('blockedbyclient');
    });
    page = await context.newPage();
    watch(page);
    try {
      await run(page, context);
    } finally {
      await screenshot(page, scenario).catch(() => {});
    }
  } finally {
    await browser.close();
  }
}

const started = Date.now();
try {
  await main();
  observed.ok = true;
} catch (error) {
  observed.ok = false;
  observed.error = String(error?.message ?? error).split('\n').slice(0, 6).join('\n');
}
observed.seconds = (Date.now() - started) / 1000;
process.stdout.write(`${JSON.stringify(observed)}\n`);
process.exitCode = observed.ok ? 0 : 1;

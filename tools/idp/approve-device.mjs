// Approves (or denies) an RFC 8628 device authorization at the test IdP by
// submitting oidc-provider's own default HTML forms over plain HTTP, exactly
// like a browser would (minus JavaScript). It documents the HTTP sequence the
// Rust integration tests replicate; see README.md "Approving a device code".
//
//   node tools/idp/approve-device.mjs <verification_uri_complete> <username> [--deny=confirm|login|consent] [--verbose]
//
// Exit code 0 when the expected final page was reached. As a module it exports
// approveDevice(verificationUriComplete, username, { deny, verbose }).

import { pathToFileURL } from 'node:url';

// Minimal cookie jar: name -> value. Cookie paths are ignored (every cookie is
// sent on every request to the IdP), which is fine for oidc-provider.
export class CookieJar {
  #cookies = new Map();

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v] = a.split('=').map((s) => s.trim());
        if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k.toLowerCase() === 'expires') return Date.parse(v) <= Date.now();
        return false;
      });
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  names() {
    return [...this.#cookies.keys()];
  }
}

function htmlDecode(s) {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

// Returns { action, fields } of the first <form> in `html` (optionally the one
// with id `id`), with all its <input name=... value=...> fields.
export function parseForm(html, id) {
  const re = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = re.exec(html))) {
    const attrs = m[1];
    if (id && !attrs.includes(`id="${id}"`)) continue;
    const action = htmlDecode(/action="([^"]*)"/.exec(attrs)?.[1] ?? '');
    const fields = {};
    for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const name = /name="([^"]*)"/.exec(input[1])?.[1];
      const value = /value="([^"]*)"/.exec(input[1])?.[1];
      if (name) fields[name] = value === undefined ? '' : htmlDecode(value);
    }
    return { action, fields };
  }
  return undefined;
}

export async function approveDevice(verificationUriComplete, username, { deny, verbose = false } = {}) {
  const jar = new CookieJar();
  const base = new URL(verificationUriComplete);
  const steps = [];

  async function request(method, url, form) {
    const target = new URL(url, base);
    const headers = { cookie: jar.header() };
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(target, { method, headers, body, redirect: 'manual' });
    jar.store(res);
    const text = await res.text();
    const location = res.headers.get('location');
    const step = {
      method,
      url: target.pathname + target.search,
      form,
      status: res.status,
      location: location || undefined,
      cookies: jar.names(),
    };
    steps.push(step);
    if (verbose) process.stderr.write(`${JSON.stringify(step)}\n`);
    return { res, text, location };
  }

  function expectForm(page, what, id) {
    const form = parseForm(page.text, id);
    if (!form) throw new Error(`${what}: no form found (HTTP ${page.res.status}): ${page.text.slice(0, 300)}`);
    return form;
  }

  // Follows 3xx redirects with GET until a non-redirect page.
  async function follow(page) {
    let current = page;
    for (let i = 0; i < 10 && current.location; i += 1) {
      current = await request('GET', current.location);
    }
    return current;
  }

  // 1. GET verification_uri_complete -> auto-submitting form (xsrf, user_code)
  let page = await request('GET', verificationUriComplete);
  const autoForm = expectForm(page, 'device auto-post form');

  // 2. POST it -> "Confirm Device" page (form id op.deviceConfirmForm)
  page = await request('POST', autoForm.action, autoForm.fields);
  const confirmForm = expectForm(page, 'device confirm page', 'op.deviceConfirmForm');

  if (deny === 'confirm') {
    // The confirm page's "[ Abort ]" button submits the same form with abort=yes
    // (and without confirm=yes).
    const { confirm, ...fields } = confirmForm.fields;
    page = await request('POST', confirmForm.action, { ...fields, abort: 'yes' });
    return { steps, final: page.text, denied: true };
  }

  // 3. POST confirm=yes -> 303 to /interaction/<uid> (login prompt)
  page = await follow(await request('POST', confirmForm.action, confirmForm.fields));

  // 4..n: interaction pages (login, then consent), then success page.
  for (let i = 0; i < 5; i += 1) {
    const form = parseForm(page.text);
    const prompt = form?.fields.prompt;
    if (!prompt) break; // final page (success or error)

    if (deny === prompt) {
      // devInteractions render a "[ Cancel ]" link: GET /interaction/<uid>/abort
      const abortHref = /<a href="([^"]*\/abort)"/.exec(page.text)?.[1];
      if (!abortHref) throw new Error(`no abort link on ${prompt} page`);
      page = await follow(await request('GET', htmlDecode(abortHref)));
      return { steps, final: page.text, denied: true };
    }

    let fields;
    if (prompt === 'login') {
      fields = { prompt: 'login', login: username, password: 'any-password' };
    } else if (prompt === 'consent') {
      fields = { prompt: 'consent' };
    } else {
      throw new Error(`unexpected interaction prompt ${prompt}`);
    }
    page = await follow(await request('POST', form.action, fields));
  }

  if (!/Sign-in Success/.test(page.text)) {
    throw new Error(`device approval did not succeed (HTTP ${page.res.status}): ${page.text.replace(/<style>[\s\S]*?<\/style>/, '').replace(/\s+/g, ' ').slice(0, 600)}`);
  }
  return { steps, final: page.text, denied: false };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const positional = args.filter((a) => !a.startsWith('--'));
  const deny = args.find((a) => a.startsWith('--deny='))?.slice('--deny='.length);
  const verbose = args.includes('--verbose');
  if (positional.length !== 2 || (deny && !['confirm', 'login', 'consent'].includes(deny))) {
    process.stderr.write('usage: node approve-device.mjs <verification_uri_complete> <username> [--deny=confirm|login|consent] [--verbose]\n');
    process.exit(2);
  }
  try {
    const { steps, denied } = await approveDevice(positional[0], positional[1], { deny, verbose });
    process.stdout.write(`${JSON.stringify({ ok: true, denied, steps: steps.map((s) => `${s.method} ${s.url} -> ${s.status}${s.location ? ` ${s.location}` : ''}`) }, null, 2)}\n`);
  } catch (err) {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  }
}

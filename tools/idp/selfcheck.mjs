// Self-check of the test IdP: starts server.js, exercises every feature the
// Rust integration tests rely on, prints what it observed, exits non-zero on
// any failure.
//
//   node tools/idp/selfcheck.mjs
//
// Prints "N passed, N failed" as its last line.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import {
  createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify,
} from 'jose';

import { approveDevice, CookieJar, parseForm } from './approve-device.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const ALL_SCOPES = 'rust-api-axum-resource-read rust-api-axum-resource-write';

let passed = 0;
let failed = 0;

function show(label, value) {
  process.stdout.write(`    ${label}: ${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function assertEq(actual, expected, msg) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`assertion failed: ${msg}: expected ${e}, got ${a}`);
}

async function check(name, fn) {
  process.stdout.write(`--- ${name}\n`);
  try {
    await fn();
    passed += 1;
    process.stdout.write(`ok  ${name}\n`);
  } catch (err) {
    failed += 1;
    process.stdout.write(`FAIL ${name}: ${err.stack || err}\n`);
  }
}

// ---------------------------------------------------------------------------
// start server.js
// ---------------------------------------------------------------------------

const started = Date.now();
const child = spawn(process.execPath, [join(here, 'server.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
const stderrLines = [];
createInterface({ input: child.stderr }).on('line', (l) => stderrLines.push(l));
const stdoutLines = [];
const stdoutRl = createInterface({ input: child.stdout });
const readyLine = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`no ready line after 10 s; stderr:\n${stderrLines.join('\n')}`)), 10000);
  stdoutRl.on('line', (line) => {
    stdoutLines.push(line);
    if (stdoutLines.length === 1) {
      clearTimeout(timer);
      resolve(line);
    }
  });
  child.once('exit', (code) => reject(new Error(`server exited early (${code}); stderr:\n${stderrLines.join('\n')}`)));
});
const startupMs = Date.now() - started;
const ready = JSON.parse(readyLine);
const { issuer } = ready;
process.stdout.write(`ready line after ${startupMs} ms: ${readyLine}\n`);

const url = (path) => `${issuer}${path}`;
const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function postForm(path, form, { auth } = {}) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth) headers.authorization = basic(...auth);
  const res = await fetch(url(path), { method: 'POST', headers, body: new URLSearchParams(form).toString() });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

async function getJson(path) {
  const res = await fetch(url(path));
  return { status: res.status, json: await res.json() };
}

async function postJson(path, body) {
  const res = await fetch(url(path), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

const TEST = ['rust-api-axum-test', 'rust-api-axum-test-secret'];
const OPAQUE = ['rust-api-axum-opaque', 'rust-api-axum-opaque-secret'];
const API = ['rust-api-axum', 'rust-api-axum-secret'];

async function clientCredentials(creds, scope) {
  const form = { grant_type: 'client_credentials' };
  if (scope !== undefined) form.scope = scope;
  const r = await postForm('/token', form, { auth: creds });
  assertEq(r.status, 200, `token endpoint status (${r.text})`);
  return r.json;
}

async function verifyAccessToken(token) {
  const { json: jwks } = await getJson('/jwks');
  const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), {
    issuer,
    audience: 'rust-api-axum',
    algorithms: ['RS256'],
  });
  return { payload, protectedHeader };
}

// ---------------------------------------------------------------------------
// checks
// ---------------------------------------------------------------------------

await check('ready line and startup time', async () => {
  assert(/^\{"issuer":"http:\/\/127\.0\.0\.1:\d+","port":\d+\}$/.test(readyLine), 'ready line format');
  assertEq(issuer, `http://127.0.0.1:${ready.port}`, 'issuer matches port');
  // Target is < 1 s on an idle machine; only fail on something clearly wrong
  // (a loaded CI machine can be slower).
  show('startup (spawn -> ready line)', `${startupMs} ms`);
  assert(startupMs < 5000, `startup took ${startupMs} ms`);
});

await check('discovery', async () => {
  const { status, json } = await getJson('/.well-known/openid-configuration');
  assertEq(status, 200, 'status');
  assertEq(json.issuer, issuer, 'issuer');
  for (const key of ['introspection_endpoint', 'revocation_endpoint', 'device_authorization_endpoint', 'jwks_uri', 'token_endpoint', 'authorization_endpoint']) {
    assert(typeof json[key] === 'string' && json[key].startsWith(issuer), `${key} present`);
    show(key, json[key]);
  }
  for (const s of ['openid', 'profile', 'offline_access', 'rust-api-axum-resource-read', 'rust-api-axum-resource-write']) {
    assert(json.scopes_supported.includes(s), `scopes_supported has ${s}`);
  }
  assert(json.claims_supported.includes('preferred_username'), 'preferred_username claim');
  show('scopes_supported', json.scopes_supported);
  show('grant_types_supported', json.grant_types_supported);
});

await check('client_credentials JWT (rust-api-axum-test), no scope/resource param', async () => {
  const body = await clientCredentials(TEST);
  const { payload, protectedHeader } = await verifyAccessToken(body.access_token);
  show('token response (minus token)', { ...body, access_token: '...' });
  show('header', protectedHeader);
  show('claims', payload);
  assertEq(protectedHeader.alg, 'RS256', 'alg');
  assertEq(payload.client_id, 'rust-api-axum-test', 'client_id');
  assertEq(payload.sub, 'rust-api-axum-test', 'sub');
  assertEq(payload.preferred_username, 'test-user', 'preferred_username');
  assertEq(payload.scope, undefined, 'no scope requested -> no scope claim');
  for (const c of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti']) assert(payload[c] !== undefined, `claim ${c}`);
});

await check('client_credentials JWT with both scopes (Basic auth)', async () => {
  const body = await clientCredentials(TEST, ALL_SCOPES);
  const { payload, protectedHeader } = await verifyAccessToken(body.access_token);
  show('header', protectedHeader);
  show('claims', payload);
  assertEq(payload.scope, ALL_SCOPES, 'scope');
  assertEq(payload.aud, 'rust-api-axum', 'aud');
  assertEq(payload.exp - payload.iat, 3600, 'default lifetime 1h');
});

await check('client_credentials JWT with a scope subset (client_secret_post)', async () => {
  const r = await postForm('/token', {
    grant_type: 'client_credentials',
    scope: 'rust-api-axum-resource-read',
    client_id: TEST[0],
    client_secret: TEST[1],
  });
  assertEq(r.status, 200, `status ${r.text}`);
  const { payload } = await verifyAccessToken(r.json.access_token);
  assertEq(payload.scope, 'rust-api-axum-resource-read', 'subset scope');
  assertEq(r.json.scope, 'rust-api-axum-resource-read', 'response scope');
});

await check('client_credentials JWT with scope=openid (no resource scope)', async () => {
  const body = await clientCredentials(TEST, 'openid');
  const { payload } = await verifyAccessToken(body.access_token);
  show('claims', payload);
  assertEq(payload.scope, undefined, 'no scope claim');
  assertEq(body.scope, undefined, 'no scope in response');
});

await check('client_credentials with explicit resource=urn:rust-api-axum', async () => {
  const body = await postForm('/token', { grant_type: 'client_credentials', scope: 'rust-api-axum-resource-write', resource: 'urn:rust-api-axum' }, { auth: TEST });
  assertEq(body.status, 200, body.text);
  const { payload } = await verifyAccessToken(body.json.access_token);
  assertEq(payload.scope, 'rust-api-axum-resource-write', 'scope');
  const bad = await postForm('/token', { grant_type: 'client_credentials', resource: 'https://other.example/' }, { auth: TEST });
  show('unknown resource', `${bad.status} ${bad.text}`);
  assertEq(bad.json?.error, 'invalid_target', 'unknown resource rejected');
});

await check('wrong client secret is rejected', async () => {
  const r = await postForm('/token', { grant_type: 'client_credentials' }, { auth: [TEST[0], 'nope'] });
  show('response', `${r.status} ${r.text}`);
  assertEq(r.json?.error, 'invalid_client', 'invalid_client');
});

await check('client_credentials opaque (rust-api-axum-opaque) + introspection by rust-api-axum', async () => {
  const body = await clientCredentials(OPAQUE, ALL_SCOPES);
  show('token response', body);
  assert(body.access_token.split('.').length === 1, 'token is opaque (not a JWT)');
  const r = await postForm('/token/introspection', { token: body.access_token }, { auth: API });
  assertEq(r.status, 200, 'introspection status');
  show('introspection response', r.json);
  assertEq(r.json.active, true, 'active');
  assertEq(r.json.scope, ALL_SCOPES, 'scope');
  assertEq(r.json.client_id, 'rust-api-axum-opaque', 'client_id');
  assertEq(r.json.sub, 'rust-api-axum-opaque', 'sub');
  assertEq(r.json.aud, 'rust-api-axum', 'aud');
  assertEq(r.json.preferred_username, 'opaque-user', 'preferred_username');
  assertEq(r.json.iss, issuer, 'iss');
  assert(typeof r.json.exp === 'number', 'exp');

  const subset = await clientCredentials(OPAQUE, 'rust-api-axum-resource-read');
  const r2 = await postForm('/token/introspection', { token: subset.access_token }, { auth: API });
  assertEq(r2.json.scope, 'rust-api-axum-resource-read', 'subset scope');

  // client_secret_post towards introspection works too
  const r3 = await postForm('/token/introspection', { token: body.access_token, client_id: API[0], client_secret: API[1] });
  assertEq(r3.json.active, true, 'introspection with client_secret_post');

  // another confidential client may not see other clients' tokens
  const r4 = await postForm('/token/introspection', { token: body.access_token }, { auth: TEST });
  assertEq(r4.json, { active: false }, 'other client gets active:false');

  // unknown token
  const r5 = await postForm('/token/introspection', { token: 'not-a-token' }, { auth: API });
  assertEq(r5.json, { active: false }, 'unknown token inactive');

  // revoked opaque token becomes inactive
  const rv = await postForm('/token/revocation', { token: subset.access_token }, { auth: OPAQUE });
  assertEq(rv.status, 200, 'revocation status');
  const r6 = await postForm('/token/introspection', { token: subset.access_token }, { auth: API });
  assertEq(r6.json, { active: false }, 'revoked token inactive');

  // introspecting a JWT is refused by oidc-provider
  const jwtBody = await clientCredentials(TEST, ALL_SCOPES);
  const r7 = await postForm('/token/introspection', { token: jwtBody.access_token }, { auth: API });
  show('introspection of a JWT access token', `${r7.status} ${r7.text}`);
});

await check('/test/keys matches JWKS', async () => {
  const keys = await getJson('/test/keys');
  const jwks = await getJson('/jwks');
  show('/test/keys', { ...keys.json, keys: keys.json.keys.map((k) => ({ ...k, n: `${k.n.slice(0, 16)}...` })) });
  show('/jwks', { keys: jwks.json.keys.map((k) => ({ ...k, n: `${k.n.slice(0, 16)}...` })) });
  assertEq(keys.json.keys.length, 1, 'one key');
  assertEq(jwks.json.keys.map((k) => k.kid), [keys.json.kid], 'jwks has the current kid only');
  assertEq(jwks.json.keys[0].n, keys.json.keys[0].n, 'same modulus');
  assert(!('d' in keys.json.keys[0]) && !('d' in jwks.json.keys[0]), 'no private parts');
});

await check('/test/sign signs exactly the given claims with the current key', async () => {
  const { json: keys } = await getJson('/test/keys');
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer, sub: 'someone', aud: 'rust-api-axum', exp: now - 600, iat: now - 1200, scope: 'rust-api-axum-resource-read',
  };
  const r = await postJson('/test/sign', { claims, header: { typ: 'at+jwt' } });
  assertEq(r.status, 200, 'status');
  show('request', { claims, header: { typ: 'at+jwt' } });
  show('response header', decodeProtectedHeader(r.json.token));
  show('response claims', decodeJwt(r.json.token));
  assertEq(decodeJwt(r.json.token), claims, 'claims exactly as given');
  assertEq(decodeProtectedHeader(r.json.token), { alg: 'RS256', typ: 'at+jwt', kid: keys.kid }, 'header');
  // signature verifies with the published JWKS (only exp makes it invalid)
  const { json: jwks } = await getJson('/jwks');
  const { payload } = await jwtVerify(r.json.token, createLocalJWKSet(jwks), { currentDate: new Date((now - 900) * 1000) });
  assertEq(payload.sub, 'someone', 'verified');

  const noHeader = await postJson('/test/sign', { claims: { a: 1 } });
  assertEq(decodeProtectedHeader(noHeader.json.token), { alg: 'RS256', typ: 'at+jwt', kid: keys.kid }, 'default header');
  const kidOverride = await postJson('/test/sign', { claims: { a: 1 }, header: { kid: 'unknown-kid' } });
  assertEq(decodeProtectedHeader(kidOverride.json.token).kid, 'unknown-kid', 'kid can be overridden');
  const bad = await postJson('/test/sign', { nope: 1 });
  show('bad request', `${bad.status} ${JSON.stringify(bad.json)}`);
  assertEq(bad.status, 400, 'missing claims -> 400');
});

await check('/test/rotate-keys: new kid for new tokens, JWKS = [new key, previous key] until /test/remove-key', async () => {
  const before = await getJson('/test/keys');
  const oldToken = (await clientCredentials(TEST, ALL_SCOPES)).access_token;
  const opaqueBefore = (await clientCredentials(OPAQUE, ALL_SCOPES)).access_token;
  const deviceBefore = await startDevice();
  const t0 = Date.now();
  const r = await postJson('/test/rotate-keys');
  show('rotation took', `${Date.now() - t0} ms`);
  assertEq(r.status, 200, 'status');
  show('POST /test/rotate-keys', r.json);
  assert(r.json.kid && r.json.kid !== before.json.kid, 'new kid');
  const jwks = await getJson('/jwks');
  assertEq(jwks.json.keys.map((k) => k.kid), [r.json.kid, before.json.kid], 'jwks has the new kid and the previous');
  const newToken = (await clientCredentials(TEST, ALL_SCOPES)).access_token;
  assertEq(decodeProtectedHeader(newToken).kid, r.json.kid, 'new token uses new kid');
  assertEq(decodeProtectedHeader(oldToken).kid, before.json.kid, 'old token had old kid');
  await verifyAccessToken(newToken);
  await verifyAccessToken(oldToken);
  const removed = await postJson('/test/remove-key');
  assertEq(removed.json.removed, [before.json.kid], 'the previous key is removed');
  const pruned = await getJson('/jwks');
  assertEq(pruned.json.keys.map((k) => k.kid), [r.json.kid], 'jwks only has the new kid');
  let oldVerifies = true;
  try { await verifyAccessToken(oldToken); } catch { oldVerifies = false; }
  assert(!oldVerifies, 'old token no longer verifies against the new JWKS');
  const signed = await postJson('/test/sign', { claims: { x: 1 } });
  assertEq(decodeProtectedHeader(signed.json.token).kid, r.json.kid, '/test/sign uses new key');
  const keys = await getJson('/test/keys');
  assertEq(keys.json.kid, r.json.kid, '/test/keys reports new kid');
  const discovery = await getJson('/.well-known/openid-configuration');
  assertEq(discovery.json.issuer, issuer, 'issuer unchanged after rotation');
  // state survives the rotation: opaque tokens issued before are still
  // introspectable, a device authorization started before can be completed
  const intro = await postForm('/token/introspection', { token: opaqueBefore }, { auth: API });
  assertEq(intro.json.active, true, 'opaque token from before rotation still active');
  await approveDevice(deviceBefore.verification_uri_complete, 'ada');
  const tok = await pollToken(deviceBefore.device_code);
  assertEq(tok.status, 200, `device flow across rotation: ${tok.text}`);
  assertEq(decodeProtectedHeader(tok.json.access_token).kid, r.json.kid, 'device token uses new kid');
  // a second rotation right away also works
  const r2 = await postJson('/test/rotate-keys');
  assert(r2.json.kid !== r.json.kid, 'third kid');
  const jwks2 = await getJson('/jwks');
  assertEq(jwks2.json.keys.map((k) => k.kid), [r2.json.kid, r.json.kid], 'jwks has the newest kid and the one before');
  show('second rotation', r2.json);
});

await check('/test/stats counts jwks / introspection / token / discovery', async () => {
  const reset = await postJson('/test/stats/reset');
  assertEq(reset.json, {
    jwks: 0, introspection: 0, token: 0, discovery: 0, redirected: 0, stalled: 0, stalled_peak: 0,
  }, 'reset');
  await getJson('/jwks');
  await getJson('/jwks');
  await getJson('/.well-known/openid-configuration');
  const tok = await clientCredentials(OPAQUE, ALL_SCOPES);
  await clientCredentials(TEST);
  await clientCredentials(TEST);
  await postForm('/token/introspection', { token: tok.access_token }, { auth: API });
  await postForm('/token', { grant_type: 'client_credentials' }, { auth: [TEST[0], 'wrong'] }); // failed requests count too
  const stats = await getJson('/test/stats');
  show('GET /test/stats', stats.json);
  assertEq(stats.json, {
    jwks: 2, introspection: 1, token: 4, discovery: 1, redirected: 0, stalled: 0, stalled_peak: 0,
  }, 'counts');
});

await check('/test/ttl changes access token lifetime', async () => {
  const r = await postJson('/test/ttl', { AccessToken: 5 });
  show('POST /test/ttl {"AccessToken":5}', r.json);
  assertEq(r.status, 200, 'status');
  const body = await clientCredentials(TEST, ALL_SCOPES);
  const claims = decodeJwt(body.access_token);
  assertEq(claims.exp - claims.iat, 5, 'lifetime 5 s');
  assertEq(body.expires_in, 5, 'expires_in');
  const bad = await postJson('/test/ttl', { AccessToken: -1 });
  assertEq(bad.status, 400, 'invalid ttl rejected');
  const back = await postJson('/test/ttl', { reset: true });
  show('POST /test/ttl {"reset":true}', back.json);
  assertEq(back.json.AccessToken, 3600, 'reset');
});

async function startDevice(scope = `openid profile offline_access ${ALL_SCOPES}`) {
  const r = await postForm('/device/auth', { client_id: 'rust-api-axum-client', scope });
  assertEq(r.status, 200, `device authorization ${r.text}`);
  return r.json;
}

async function pollToken(deviceCode, { maxSeconds = 10 } = {}) {
  const deadline = Date.now() + maxSeconds * 1000;
  for (;;) {
    const r = await postForm('/token', { grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: 'rust-api-axum-client' });
    if (r.json?.error !== 'authorization_pending' || Date.now() > deadline) return r;
    await new Promise((res) => { setTimeout(res, 1000); });
  }
}

let deviceTokens;
await check('device flow end to end (ada): access + refresh + id token', async () => {
  await postJson('/test/ttl', { AccessToken: 2 });
  const da = await startDevice();
  show('device authorization response', da);
  assertEq(da.interval, 1, 'interval 1');
  const pending = await postForm('/token', { grant_type: DEVICE_GRANT, device_code: da.device_code, client_id: 'rust-api-axum-client' });
  show('poll before approval', `${pending.status} ${pending.text}`);
  assertEq(pending.json.error, 'authorization_pending', 'pending');

  const { steps } = await approveDevice(da.verification_uri_complete, 'ada');
  show('approval steps', steps.map((s) => `${s.method} ${s.url}${s.form ? ` ${JSON.stringify(s.form)}` : ''} -> ${s.status}${s.location ? ` Location: ${s.location}` : ''}`));

  const r = await pollToken(da.device_code);
  assertEq(r.status, 200, `token ${r.text}`);
  deviceTokens = r.json;
  show('token response keys', Object.keys(r.json));
  show('token response scope', r.json.scope);
  assert(r.json.refresh_token, 'refresh_token issued');
  assert(r.json.id_token, 'id_token issued');
  const { payload, protectedHeader } = await verifyAccessToken(r.json.access_token);
  show('access token header', protectedHeader);
  show('access token claims', payload);
  show('id token claims', decodeJwt(r.json.id_token));
  assertEq(payload.sub, 'ada', 'sub');
  assertEq(payload.preferred_username, 'ada', 'preferred_username');
  assertEq(payload.client_id, 'rust-api-axum-client', 'client_id');
  assertEq(payload.scope, ALL_SCOPES, 'scope');
  assertEq(payload.exp - payload.iat, 2, 'ttl from /test/ttl');

});

await check('refresh token grant after the access token expired, then revocation', async () => {
  assert(deviceTokens, 'needs device tokens');
  await new Promise((res) => { setTimeout(res, 2500); });
  const old = decodeJwt(deviceTokens.access_token);
  assert(old.exp <= Math.floor(Date.now() / 1000), 'old access token expired');
  await postJson('/test/ttl', { reset: true });
  const r = await postForm('/token', { grant_type: 'refresh_token', refresh_token: deviceTokens.refresh_token, client_id: 'rust-api-axum-client' });
  assertEq(r.status, 200, `refresh ${r.text}`);
  show('refresh response keys', Object.keys(r.json));
  const { payload } = await verifyAccessToken(r.json.access_token);
  show('refreshed access token claims', payload);
  assertEq(payload.sub, 'ada', 'sub');
  assertEq(payload.scope, ALL_SCOPES, 'scope');
  assertEq(payload.exp - payload.iat, 3600, 'default ttl again');
  assert(r.json.refresh_token && r.json.refresh_token !== deviceTokens.refresh_token, 'rotated refresh token');

  // introspection of the refresh token by the API
  const intro = await postForm('/token/introspection', { token: r.json.refresh_token }, { auth: API });
  show('introspection of refresh token by rust-api-axum', intro.json);
  assertEq(intro.json.active, true, 'refresh token active');

  // revocation (public client, own token)
  const rv = await postForm('/token/revocation', { token: r.json.refresh_token, token_type_hint: 'refresh_token', client_id: 'rust-api-axum-client' });
  assertEq(rv.status, 200, `revocation ${rv.text}`);
  const after = await postForm('/token', { grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: 'rust-api-axum-client' });
  show('refresh after revocation', `${after.status} ${after.text}`);
  assertEq(after.json.error, 'invalid_grant', 'revoked refresh token rejected');

  // the rotated-away refresh token can no longer be used (oidc-provider also
  // revokes the whole grant when a consumed refresh token is presented again)
  const reuse = await postForm('/token', { grant_type: 'refresh_token', refresh_token: deviceTokens.refresh_token, client_id: 'rust-api-axum-client' });
  show('reuse of old (rotated) refresh token', `${reuse.status} ${reuse.text}`);
  assertEq(reuse.json.error, 'invalid_grant', 'old refresh token rejected');

  const rvJwt = await postForm('/token/revocation', { token: r.json.access_token, client_id: 'rust-api-axum-client' });
  show('revocation of a JWT access token', `${rvJwt.status} ${rvJwt.text}`);
});

await check('device flow as grace with a scope subset', async () => {
  const da = await startDevice('openid offline_access rust-api-axum-resource-read');
  await approveDevice(da.verification_uri_complete, 'grace');
  const r = await pollToken(da.device_code);
  assertEq(r.status, 200, r.text);
  const { payload } = await verifyAccessToken(r.json.access_token);
  show('claims', payload);
  assertEq(payload.sub, 'grace', 'sub');
  assertEq(payload.preferred_username, 'grace', 'preferred_username');
  assertEq(payload.scope, 'rust-api-axum-resource-read', 'scope subset');

  // The device code is single-use; redeeming it again fails AND (oidc-provider
  // code-reuse protection) revokes the whole grant, including its refresh token.
  const again = await postForm('/token', { grant_type: DEVICE_GRANT, device_code: da.device_code, client_id: 'rust-api-axum-client' });
  show('second redemption of the device code', `${again.status} ${again.text}`);
  assertEq(again.json.error, 'invalid_grant', 'device code consumed');
  const refresh = await postForm('/token', { grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: 'rust-api-axum-client' });
  show('refresh after device code reuse', `${refresh.status} ${refresh.text}`);
  assertEq(refresh.json.error, 'invalid_grant', 'grant revoked after code reuse');
});

for (const deny of ['confirm', 'login', 'consent']) {
  await check(`device flow denied at ${deny} step -> access_denied`, async () => {
    const da = await startDevice();
    const { steps, denied } = await approveDevice(da.verification_uri_complete, 'ada', { deny });
    assert(denied, 'denied');
    show('steps', steps.map((s) => `${s.method} ${s.url}${s.form ? ` ${JSON.stringify(s.form)}` : ''} -> ${s.status}${s.location ? ` Location: ${s.location}` : ''}`));
    const r = await pollToken(da.device_code);
    show('token endpoint', `${r.status} ${r.text}`);
    assertEq(r.status, 400, 'status');
    assertEq(r.json.error, 'access_denied', 'access_denied');
  });
}

await check('unknown user cannot log in', async () => {
  const da = await startDevice();
  let err;
  try { await approveDevice(da.verification_uri_complete, 'mallory'); } catch (e) { err = e; }
  assert(err, 'approval fails');
  show('error', err.message.slice(0, 200));
  assert(/HTTP 400/.test(err.message) && /unknown account/.test(err.message), 'login form answers 400 unknown account');
  // the same interaction can still be completed with a known user? (not needed) -- the device code stays pending
  const r = await postForm('/token', { grant_type: DEVICE_GRANT, device_code: da.device_code, client_id: 'rust-api-axum-client' });
  assertEq(r.json.error, 'authorization_pending', 'still pending');
});

await check('authorization code + PKCE for rust-api-axum (Swagger UI redirect_uri)', async () => {
  const redirectUri = 'http://127.0.0.1:8080/apidoc/swagger/oauth2-redirect.html';
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const authUrl = new URL(url('/auth'));
  Object.entries({
    client_id: 'rust-api-axum',
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: `openid ${ALL_SCOPES}`,
    state: 'xyz',
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).forEach(([k, v]) => authUrl.searchParams.set(k, v));
  const jar = new CookieJar();
  const req = async (method, target, form) => {
    const res = await fetch(new URL(target, issuer), {
      method,
      redirect: 'manual',
      headers: { cookie: jar.header(), ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body: form ? new URLSearchParams(form).toString() : undefined,
    });
    jar.store(res);
    return { res, text: await res.text(), location: res.headers.get('location') };
  };
  let page = await req('GET', authUrl.href);
  let code;
  for (let i = 0; i < 12; i += 1) {
    if (page.location) {
      if (page.location.startsWith(redirectUri)) {
        const cb = new URL(page.location);
        code = cb.searchParams.get('code');
        assertEq(cb.searchParams.get('state'), 'xyz', 'state');
        break;
      }
      page = await req('GET', page.location);
      continue;
    }
    const form = parseForm(page.text);
    const prompt = form?.fields.prompt;
    assert(prompt, `expected an interaction form: ${page.text.slice(0, 200)}`);
    page = await req('POST', form.action, prompt === 'login' ? { prompt, login: 'ada', password: 'x' } : { prompt });
  }
  assert(code, 'got authorization code');
  const tr = await postForm('/token', {
    grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier,
  }, { auth: API });
  assertEq(tr.status, 200, tr.text);
  const { payload } = await verifyAccessToken(tr.json.access_token);
  show('access token claims', payload);
  assertEq(payload.sub, 'ada', 'sub');
  assertEq(payload.scope, ALL_SCOPES, 'scope');

  const pre = await fetch(url('/token'), {
    method: 'OPTIONS',
    headers: { origin: 'http://127.0.0.1:8080', 'access-control-request-method': 'POST' },
  });
  show('CORS preflight /token', `${pre.status} allow-origin=${pre.headers.get('access-control-allow-origin')}`);
  const cors = await fetch(url('/token'), {
    method: 'POST',
    headers: { origin: 'http://localhost:8080', 'content-type': 'application/x-www-form-urlencoded', authorization: basic(...API) },
    body: 'grant_type=authorization_code&code=invalid&redirect_uri=x',
  });
  show('CORS POST /token from http://localhost:8080', `${cors.status} allow-origin=${cors.headers.get('access-control-allow-origin')}`);
  assertEq(cors.headers.get('access-control-allow-origin'), 'http://localhost:8080', 'CORS allowed for Swagger origin');
});

await check('unknown admin endpoint -> 404 JSON', async () => {
  const r = await fetch(url('/test/nope'));
  assertEq(r.status, 404, 'status');
  show('body', await r.json());
});

await check('SIGTERM exits cleanly; stdout had exactly one line', async () => {
  const exit = once(child, 'exit');
  const t0 = Date.now();
  child.kill('SIGTERM');
  const [code, signal] = await exit;
  show('exit', { code, signal, ms: Date.now() - t0 });
  assertEq(code, 0, 'exit code 0');
  assertEq(stdoutLines, [readyLine], 'stdout lines');
});

if (child.exitCode === null) child.kill('SIGTERM');
if (failed) {
  process.stdout.write('--- server stderr (tail)\n');
  process.stdout.write(`${stderrLines.slice(-40).join('\n')}\n`);
}
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);

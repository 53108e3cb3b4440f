// Test-only OpenID provider for rust-api-axum integration tests.
//
//   node tools/idp/server.js [--port N] [--tls-cert CERT.pem --tls-key KEY.pem] [--state FILE] [--date-offset-secs N]
//
// Binds to 127.0.0.1 only (plain HTTP on loopback; HTTPS with --tls-cert/--tls-key,
// for testing the API server's custom CA option). When ready it prints exactly
// one line to stdout:  {"issuer":"http://127.0.0.1:PORT","port":PORT}
// Everything else (logs, oidc-provider notices) goes to stderr.
//
// Never use this outside tests: it has unauthenticated admin endpoints under
// /test/ (key rotation, arbitrary token signing, TTL changes, request stats,
// and misbehaviour on demand: POST /test/behaviour makes the JWKS or the
// introspection endpoint redirect, stall, answer a huge body or chosen claims).

// oidc-provider prints its "you SHOULD change ..." notices with console.info,
// i.e. to stdout. stdout is reserved for the single ready line, so route all
// console output to stderr before anything else runs.
for (const method of ['log', 'info', 'debug']) {
  console[method] = (...args) => console.error(...args);
}

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as querystring from 'node:querystring';

// oidc-provider and jose are imported dynamically in main() so that loading
// them (~0.3 s) overlaps with generating the first RSA key (0.2-0.7 s).
let Provider;
let errors;
let CompactSign;

// ---------------------------------------------------------------------------
// Static test data
// ---------------------------------------------------------------------------

const AUDIENCE = 'rust-api-axum';
// Resource indicator (RFC 8707) of the API. oidc-provider requires an absolute
// URI; clients never need to send it because it is the default resource.
const RESOURCE = 'urn:rust-api-axum';
const RESOURCE_SCOPES = ['rust-api-axum-resource-read', 'rust-api-axum-resource-write'];

const USERS = {
  ada: { sub: 'ada', preferred_username: 'ada', name: 'Ada Lovelace' },
  grace: { sub: 'grace', preferred_username: 'grace', name: 'Grace Hopper' },
};

// preferred_username put into client_credentials tokens, per client.
const SERVICE_USERNAMES = {
  'rust-api-axum-test': 'test-user',
  'rust-api-axum-opaque': 'opaque-user',
};

// Clients whose access tokens for the API are opaque (must be introspected).
const OPAQUE_CLIENTS = new Set(['rust-api-axum-opaque']);

// The API server itself may introspect every token.
const INTROSPECTING_CLIENTS = new Set(['rust-api-axum']);

const CLIENTS = [
  {
    client_id: 'rust-api-axum',
    client_name: 'rust-api-axum (API server / Swagger UI)',
    client_secret: 'rust-api-axum-secret',
    token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [
      'http://127.0.0.1:8080/apidoc/swagger/oauth2-redirect.html',
      'http://localhost:8080/apidoc/swagger/oauth2-redirect.html',
    ],
  },
  {
    client_id: 'rust-api-axum-test',
    client_name: 'rust-api-axum test (client_credentials, JWT access tokens)',
    client_secret: 'rust-api-axum-test-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: ['openid', ...RESOURCE_SCOPES].join(' '),
  },
  {
    client_id: 'rust-api-axum-opaque',
    client_name: 'rust-api-axum opaque (client_credentials, opaque access tokens)',
    client_secret: 'rust-api-axum-opaque-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: ['openid', ...RESOURCE_SCOPES].join(' '),
  },
  {
    // Swagger UI's Authorize: a page in the browser cannot keep a secret, so it signs in as a public client
    // with the authorization code flow and PKCE (required for public clients, see `pkce` below). Native,
    // so that its loopback redirect URIs match any port (RFC 8252 7.3): the tests' API servers listen on a
    // free port.
    client_id: 'rust-api-axum-docs',
    client_name: 'rust-api-axum Swagger UI (authorization code + PKCE, public)',
    token_endpoint_auth_method: 'none',
    application_type: 'native',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [
      'http://127.0.0.1:8080/apidoc/swagger/oauth2-redirect.html',
      'http://localhost:8080/apidoc/swagger/oauth2-redirect.html',
    ],
    scope: ['openid', 'profile', ...RESOURCE_SCOPES].join(' '),
  },
  {
    client_id: 'rust-api-axum-client',
    client_name: 'rust-api-axum CLI (device authorization grant)',
    token_endpoint_auth_method: 'none',
    application_type: 'native',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope: ['openid', 'profile', 'offline_access', ...RESOURCE_SCOPES].join(' '),
  },
];

// RFC 8628 polling interval advertised in the device authorization response.
const DEVICE_POLL_INTERVAL = 1;

const DEFAULT_TTL = {
  AccessToken: 3600,
  ClientCredentials: 3600,
  RefreshToken: 14 * 24 * 3600,
  IdToken: 3600,
  DeviceCode: 600,
};

// ---------------------------------------------------------------------------
// Mutable state (keys, TTLs, stats)
// ---------------------------------------------------------------------------

const state = {
  key: undefined, // { kid, privateJwk, publicJwk, keyObject }
  keyGeneration: 0,
  provider: undefined,
  handler: undefined,
  ttl: { ...DEFAULT_TTL },
  stats: {
    jwks: 0, introspection: 0, token: 0, discovery: 0, redirected: 0, stalled: 0, stalled_peak: 0,
  },
  issuer: undefined,
  // The key a rotation replaced, still published beside the current one (as real providers keep it for a while,
  // so tokens it signed keep verifying) until POST /test/remove-key.
  previous: [],
  // Every key rotated out, by kid: /test/sign can still sign with them (also once removed from the JWKS).
  retired: new Map(),
};

// How the provider's own endpoints misbehave, per POST /test/behaviour:
//   jwks:          "normal" | "redirect" | "stall" | "huge" | "empty"
//   jwksMaxAge:    seconds for a Cache-Control: max-age on the JWKS, or null
//   introspection: "normal" | "redirect" | "stall" | {"answer": {...}} (that JSON for every token)
const DEFAULT_BEHAVIOUR = { jwks: 'normal', jwksMaxAge: null, introspection: 'normal' };
const behaviour = { ...DEFAULT_BEHAVIOUR };
// Connections held open by "stall", closed when the behaviour changes back.
const stalled = new Set();
// Size of the "huge" answer: far beyond any sane JWKS.
const HUGE_BYTES = 64 * 1024 * 1024;

// Cookie signing keys survive provider re-creation (key rotation) so that
// in-flight browser/device sessions stay valid; grants, sessions and tokens
// survive it too (see SharedMemoryAdapter).
const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];

function log(...args) {
  process.stderr.write(`[idp] ${args.join(' ')}\n`);
}

function generateRsaKey() {
  return new Promise((resolve, reject) => {
    crypto.generateKeyPair('rsa', { modulusLength: 2048 }, (err, publicKey, privateKey) => {
      if (err) reject(err);
      else resolve(privateKey);
    });
  });
}

// Key generation takes 0.2-0.7 s; keep one spare key ready so that
// POST /test/rotate-keys answers quickly.
let spareKey;
function prepareSpareKey() {
  spareKey = generateRsaKey();
  spareKey.catch(() => {});
}

async function nextSigningKey({ spare = true } = {}) {
  // take the pending spare synchronously so concurrent rotations never share a key
  const pending = spareKey || generateRsaKey();
  spareKey = undefined;
  if (spare) prepareSpareKey();
  const privateKey = await pending;
  state.keyGeneration += 1;
  const kid = `idp-${state.keyGeneration}-${crypto.randomBytes(6).toString('hex')}`;
  const jwk = privateKey.export({ format: 'jwk' });
  const privateJwk = {
    ...jwk, kid, alg: 'RS256', use: 'sig',
  };
  const publicJwk = {
    kty: 'RSA', n: jwk.n, e: jwk.e, kid, alg: 'RS256', use: 'sig',
  };
  return {
    kid, privateJwk, publicJwk, keyObject: privateKey,
  };
}

// ---------------------------------------------------------------------------
// Storage adapter
// ---------------------------------------------------------------------------

// oidc-provider's built-in memory adapter keeps a separate store per Provider
// instance (so a key rotation, which re-creates the Provider, would forget
// every session, grant, device code, opaque and refresh token) and is an LRU
// that starts evicting after ~1000 entries. This one is process-wide, has no
// size limit and is shared by all Provider instances. Entries are kept until
// their expiry plus a margin (the models check expiry themselves).
const STORE_MARGIN_MS = 60_000;
const store = new Map(); // "Model:id" -> { payload, expiresAt }
const grantIndex = new Map(); // grantId -> Set of "Model:id"
const sessionUidIndex = new Map(); // session uid -> id
const userCodeIndex = new Map(); // device user_code -> id

const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);

function storeGet(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 + STORE_MARGIN_MS : undefined;
    store.set(key, { payload, expiresAt });
    indexEntry(this.model, id, payload);
    saveState();
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUid(uid) {
    const id = sessionUidIndex.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = userCodeIndex.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    saveState();
  }

  async destroy(id) {
    const key = this.key(id);
    const payload = store.get(key)?.payload;
    store.delete(key);
    if (payload?.uid && sessionUidIndex.get(payload.uid) === id) sessionUidIndex.delete(payload.uid);
    if (payload?.userCode && userCodeIndex.get(payload.userCode) === id) userCodeIndex.delete(payload.userCode);
    saveState();
  }

  async revokeByGrantId(grantId) {
    for (const key of grantIndex.get(grantId) ?? []) store.delete(key);
    grantIndex.delete(grantId);
    saveState();
  }
}

// The look-up indexes of one stored entry (also rebuilt from a --state file at start).
function indexEntry(model, id, payload) {
  const key = `${model}:${id}`;
  if (GRANTABLE.has(model) && payload.grantId) {
    if (!grantIndex.has(payload.grantId)) grantIndex.set(payload.grantId, new Set());
    grantIndex.get(payload.grantId).add(key);
  }
  if (model === 'Session' && payload.uid) sessionUidIndex.set(payload.uid, id);
  if (model === 'DeviceCode' && payload.userCode) userCodeIndex.set(payload.userCode, id);
}

// ---------------------------------------------------------------------------
// Optional persistence (--state FILE)
// ---------------------------------------------------------------------------

// A real provider keeps its signing key and what it issued across a restart.
// With --state FILE this one does too: the current signing key and the whole
// store (grants, sessions, opaque and refresh tokens, device codes) are written
// to FILE on every change (write to a temporary file, then rename, so a kill
// never leaves half a file) and read back at start. A test can then stop the
// provider and start it again on the same --port, as an outage, and find the
// same keys and tokens. Without --state every start is a fresh provider.
let statePath;

function saveState() {
  if (!statePath || !state.key) return;
  const data = {
    keyGeneration: state.keyGeneration,
    privateJwk: state.key.privateJwk,
    previous: state.previous.map((key) => key.privateJwk),
    store: [...store.entries()],
  };
  const temporary = `${statePath}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(data));
  fs.renameSync(temporary, statePath);
}

// The signing key saved in the --state file, with the store loaded from it; undefined without one.
function loadState() {
  if (!statePath || !fs.existsSync(statePath)) return undefined;
  const data = JSON.parse(fs.readFileSync(statePath, 'utf8'));
  state.keyGeneration = data.keyGeneration;
  for (const [key, entry] of data.store) {
    store.set(key, entry);
    const colon = key.indexOf(':');
    indexEntry(key.slice(0, colon), key.slice(colon + 1), entry.payload);
  }
  state.previous = (data.previous ?? []).map(keyFromJwk);
  for (const key of state.previous) state.retired.set(key.kid, key);
  return keyFromJwk(data.privateJwk);
}

// A signing key as `state` holds it, from its private JWK.
function keyFromJwk(privateJwk) {
  return {
    kid: privateJwk.kid,
    privateJwk,
    publicJwk: {
      kty: 'RSA', n: privateJwk.n, e: privateJwk.e, kid: privateJwk.kid, alg: 'RS256', use: 'sig',
    },
    keyObject: crypto.createPrivateKey({ key: privateJwk, format: 'jwk' }),
  };
}

// Drop expired entries now and then (tests are short; this only bounds memory).
setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.expiresAt !== undefined && entry.expiresAt <= now) store.delete(key);
  }
  for (const [grantId, keys] of grantIndex) {
    for (const key of keys) if (!store.has(key)) keys.delete(key);
    if (!keys.size) grantIndex.delete(grantId);
  }
  for (const [uid, id] of sessionUidIndex) if (!store.has(`Session:${id}`)) sessionUidIndex.delete(uid);
  for (const [code, id] of userCodeIndex) if (!store.has(`DeviceCode:${id}`)) userCodeIndex.delete(code);
}, 60_000).unref();

// ---------------------------------------------------------------------------
// oidc-provider configuration
// ---------------------------------------------------------------------------

function isAcceptedResource(indicator) {
  if (indicator === RESOURCE) return true;
  // Also accept the API's own loopback URL(s) as a resource indicator.
  const url = URL.parse(indicator);
  return !!url && url.protocol === 'http:' && ['127.0.0.1', 'localhost'].includes(url.hostname);
}

function buildConfiguration() {
  return {
    adapter: SharedMemoryAdapter,
    clients: structuredClone(CLIENTS),
    jwks: { keys: [state.key.privateJwk] },
    cookies: {
      keys: COOKIE_KEYS,
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', 'profile', ...RESOURCE_SCOPES],
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      acr: null,
      sid: null,
      auth_time: null,
      iss: null,
    },
    async findAccount(ctx, sub) {
      const user = USERS[sub];
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { ...user };
        },
      };
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: {
        enabled: true,
        async allowedPolicy(ctx, client, token) {
          if (token.clientId !== client.clientId) {
            if (client.clientAuthMethod === 'none') return false;
            throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
          }
          return true;
        },
      },
      introspection: {
        enabled: true,
        async allowedPolicy(ctx, client, token) {
          // rust-api-axum (the resource server) may introspect every token;
          // everybody else only their own tokens.
          if (INTROSPECTING_CLIENTS.has(client.clientId)) return true;
          return token.clientId === client.clientId;
        },
      },
      resourceIndicators: {
        enabled: true,
        async defaultResource(ctx, client, oneOf) {
          if (oneOf) return oneOf;
          return RESOURCE;
        },
        // Use the granted resource at the token endpoint even when `openid`
        // was requested (otherwise oidc-provider issues an opaque
        // userinfo-only access token for device/authorization-code flows).
        async useGrantedResource() {
          return true;
        },
        async getResourceServerInfo(ctx, resourceIndicator, client) {
          if (!isAcceptedResource(resourceIndicator)) {
            throw new errors.InvalidTarget();
          }
          const info = {
            scope: RESOURCE_SCOPES.join(' '),
            audience: AUDIENCE,
          };
          if (OPAQUE_CLIENTS.has(client?.clientId)) {
            info.accessTokenFormat = 'opaque';
          } else {
            info.accessTokenFormat = 'jwt';
            info.jwt = { sign: { alg: 'RS256' } };
          }
          return info;
        },
      },
      userinfo: { enabled: true },
    },
    async extraTokenClaims(ctx, token) {
      if (token.kind === 'ClientCredentials') {
        // `sub` here matters for opaque tokens (introspection response); JWT
        // access tokens get sub=client_id from oidc-provider anyway.
        const claims = { sub: token.clientId };
        const username = SERVICE_USERNAMES[token.clientId];
        if (username) claims.preferred_username = username;
        return claims;
      }
      if (token.kind === 'AccessToken' && token.accountId) {
        const user = USERS[token.accountId];
        if (user) return { preferred_username: user.preferred_username };
      }
      return undefined;
    },
    clientBasedCORS(ctx, origin, client) {
      // Swagger UI (browser) exchanges the code from the API's origin: allowed where one of the client's
      // redirect URIs would be allowed at that origin (so any loopback port for a native client).
      if (origin === 'null') return false;
      return client.redirectUris.some((uri) => {
        const path = URL.parse(uri)?.pathname;
        const candidate = path && URL.parse(path, origin);
        return !!candidate && candidate.origin === origin && client.redirectUriAllowed(candidate.href);
      });
    },
    pkce: {
      required: (ctx, client) => client.clientAuthMethod === 'none',
    },
    ttl: {
      AccessToken: () => state.ttl.AccessToken,
      ClientCredentials: () => state.ttl.ClientCredentials,
      RefreshToken: (ctx, token, client) => {
        if (
          ctx?.oidc?.entities.RotatedRefreshToken
          && client.applicationType === 'web'
          && client.clientAuthMethod === 'none'
          && !token.isSenderConstrained()
        ) {
          return ctx.oidc.entities.RotatedRefreshToken.remainingTTL;
        }
        return state.ttl.RefreshToken;
      },
      IdToken: () => state.ttl.IdToken,
      DeviceCode: () => state.ttl.DeviceCode,
      AuthorizationCode: () => 60,
      Interaction: () => 3600,
      Session: () => 14 * 24 * 3600,
      Grant: () => 14 * 24 * 3600,
      BackchannelAuthenticationRequest: () => 600,
      PreAuthorizedCode: () => 600,
    },
  };
}

function createProvider() {
  const provider = new Provider(state.issuer, buildConfiguration());

  // Advertise a short RFC 8628 polling interval (oidc-provider does not set
  // `interval` itself; clients would otherwise default to 5 seconds).
  provider.use(async (ctx, next) => {
    await next();
    if (
      ctx.method === 'POST'
      && ctx.path === '/device/auth'
      && ctx.status === 200
      && ctx.body && typeof ctx.body === 'object'
    ) {
      ctx.body.interval = DEVICE_POLL_INTERVAL;
    }
  });

  provider.on('server_error', (ctx, err) => log('server_error', ctx.method, ctx.path, err?.stack || err));
  for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'device_authorization.error', 'authorization.error']) {
    provider.on(event, (ctx, err) => log(event, err?.error || '', err?.error_description || err?.message || '', err?.error_detail ? `(${err.error_detail})` : ''));
  }

  return provider;
}

function installProvider() {
  state.provider = createProvider();
  state.handler = state.provider.callback();
}

// ---------------------------------------------------------------------------
// HTTP layer: stats + /test/ admin endpoints, then oidc-provider
// ---------------------------------------------------------------------------

const STATS_PATHS = new Map([
  ['/jwks', 'jwks'],
  ['/token/introspection', 'introspection'],
  ['/token', 'token'],
  ['/.well-known/openid-configuration', 'discovery'],
  ['/.well-known/oauth-authorization-server', 'discovery'],
]);

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  });
  res.end(data);
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  return JSON.parse(text);
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function handleAdmin(req, res, pathname) {
  const route = `${req.method} ${pathname.replace(/\/+$/, '')}`;
  switch (route) {
    case 'POST /test/rotate-keys': {
      await readJson(req).catch(() => ({}));
      const key = await nextSigningKey();
      state.retired.set(state.key.kid, state.key);
      state.previous = [state.key];
      state.key = key;
      saveState();
      installProvider();
      log('rotated signing key, new kid', state.key.kid);
      return sendJson(res, 200, { kid: state.key.kid });
    }
    case 'POST /test/sign': {
      let body;
      try {
        body = await readJson(req);
      } catch {
        throw new HttpError(400, 'body must be JSON');
      }
      if (!body || typeof body !== 'object' || !('claims' in body)) {
        throw new HttpError(400, 'body must be {"claims": {...}, "header": {...}}');
      }
      // {"key": KID} signs with a key rotated out of the JWKS (the provider removed it).
      const signer = body.key ? state.retired.get(body.key) : state.key;
      if (!signer) throw new HttpError(400, `no retired key ${body.key}`);
      // typ at+jwt by default, as the provider's own JWT access tokens (RFC 9068) carry it.
      const header = {
        alg: 'RS256', typ: 'at+jwt', kid: signer.kid, ...(body.header || {}),
      };
      // a null value removes a default field, e.g. {"kid": null} -> no kid
      for (const [name, value] of Object.entries(header)) {
        if (value === null) delete header[name];
      }
      let token;
      try {
        token = await new CompactSign(new TextEncoder().encode(JSON.stringify(body.claims)))
          .setProtectedHeader(header)
          .sign(signer.keyObject);
      } catch (err) {
        throw new HttpError(400, `cannot sign: ${err.message}`);
      }
      return sendJson(res, 200, { token });
    }
    case 'POST /test/remove-key': {
      // The provider stops publishing the keys rotated out: what it does when one is compromised.
      await readJson(req).catch(() => ({}));
      const removed = state.previous.map((key) => key.kid);
      state.previous = [];
      saveState();
      log('removed keys', removed.join(', '));
      return sendJson(res, 200, { removed });
    }
    case 'GET /test/keys':
      return sendJson(res, 200, { keys: [state.key.publicJwk], kid: state.key.kid });
    case 'POST /test/behaviour': {
      let body;
      try {
        body = await readJson(req);
      } catch {
        throw new HttpError(400, 'body must be JSON');
      }
      for (const name of Object.keys(body)) {
        if (name !== 'reset' && !(name in DEFAULT_BEHAVIOUR)) throw new HttpError(400, `unknown behaviour ${name}`);
      }
      if (body.reset === true) Object.assign(behaviour, DEFAULT_BEHAVIOUR);
      for (const [name, value] of Object.entries(body)) {
        if (name !== 'reset') behaviour[name] = value;
      }
      if (behaviour.jwks !== 'stall' && behaviour.introspection !== 'stall') {
        for (const socket of stalled) socket.destroy();
        stalled.clear();
      }
      return sendJson(res, 200, { ...behaviour });
    }
    case 'POST /test/redirected':
    case 'GET /test/redirected': {
      // Where "redirect" points: counts what arrives, so a test sees whether a client followed (and re-sent a body).
      state.stats.redirected += 1;
      await readJson(req).catch(() => ({}));
      return sendJson(res, 200, { keys: [], active: true, sub: 'redirected', aud: AUDIENCE });
    }
    case 'GET /test/stats':
      return sendJson(res, 200, { ...state.stats });
    case 'POST /test/stats/reset':
      for (const k of Object.keys(state.stats)) state.stats[k] = 0;
      return sendJson(res, 200, { ...state.stats });
    case 'GET /test/ttl':
      return sendJson(res, 200, { ...state.ttl });
    case 'POST /test/ttl': {
      let body;
      try {
        body = await readJson(req);
      } catch {
        throw new HttpError(400, 'body must be JSON');
      }
      if (body.reset === true) {
        Object.assign(state.ttl, DEFAULT_TTL);
      }
      for (const [name, value] of Object.entries(body)) {
        if (name === 'reset') continue;
        if (!(name in DEFAULT_TTL)) throw new HttpError(400, `unknown ttl ${name}; known: ${Object.keys(DEFAULT_TTL).join(', ')}`);
        if (!Number.isSafeInteger(value) || value <= 0) throw new HttpError(400, `${name} must be a positive integer (seconds)`);
      }
      for (const [name, value] of Object.entries(body)) {
        if (name !== 'reset') state.ttl[name] = value;
      }
      // "AccessToken" covers client_credentials tokens too, unless set explicitly.
      if ('AccessToken' in body && !('ClientCredentials' in body)) {
        state.ttl.ClientCredentials = body.AccessToken;
      }
      return sendJson(res, 200, { ...state.ttl });
    }
    default:
      throw new HttpError(404, `no admin endpoint ${route}`);
  }
}

// devInteractions accept any login name; an unknown account would make
// oidc-provider fail later with a 500. Reject unknown login names up front
// (HTTP 400, the interaction stays usable so the form can be re-submitted).
// The consumed body is handed on as req.body, which oidc-provider accepts.
async function screenInteractionLogin(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  req.body = querystring.parse(Buffer.concat(chunks).toString('utf8'));
  if (req.body.prompt === 'login' && !Object.hasOwn(USERS, String(req.body.login))) {
    const msg = `unknown account ${JSON.stringify(String(req.body.login))}; known: ${Object.keys(USERS).join(', ')}`;
    log('login rejected:', msg);
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`${msg}\n`);
    return false;
  }
  return true;
}

// Answers req as `mode` says, or returns false to let the provider answer normally.
function misbehave(req, res, mode) {
  if (mode === 'redirect') {
    res.writeHead(307, { location: `${state.issuer}/test/redirected`, 'cache-control': 'no-store' });
    res.end();
    return true;
  }
  if (mode === 'stall') {
    // Accept the request and never answer, as a hung provider (or a black-holed path) does.
    req.resume();
    state.stats.stalled += 1;
    stalled.add(req.socket);
    state.stats.stalled_peak = Math.max(state.stats.stalled_peak, stalled.size);
    req.socket.on('close', () => stalled.delete(req.socket));
    return true;
  }
  if (mode === 'huge') {
    res.writeHead(200, { 'content-type': 'application/json' });
    const padding = Buffer.alloc(1024 * 1024, 0x20);
    let sent = 0;
    const more = () => {
      while (sent < HUGE_BYTES) {
        sent += padding.length;
        if (!res.write(sent === padding.length ? Buffer.concat([Buffer.from('{"keys":['), padding]) : padding)) {
          res.once('drain', more);
          return;
        }
      }
      res.end(']}');
    };
    res.on('error', () => {});
    more();
    return true;
  }
  if (mode === 'empty') {
    sendJson(res, 200, { keys: [] });
    return true;
  }
  if (mode && typeof mode === 'object' && mode.answer) {
    sendJson(res, 200, mode.answer);
    return true;
  }
  return false;
}

function onRequest(req, res) {
  const { pathname } = new URL(req.url, 'http://127.0.0.1');
  const stat = STATS_PATHS.get(pathname);
  if (stat) state.stats[stat] += 1;

  if (pathname === '/jwks' || pathname === '/token/introspection') {
    const mode = pathname === '/jwks' ? behaviour.jwks : behaviour.introspection;
    if (misbehave(req, res, mode)) return;
    if (pathname === '/jwks' && state.previous.length) {
      // oidc-provider publishes only the key it signs with; after a rotation the previous one is published too.
      const keys = [state.key, ...state.previous].map((key) => key.publicJwk);
      const data = JSON.stringify({ keys });
      res.writeHead(200, {
        'content-type': 'application/jwk-set+json; charset=utf-8',
        'cache-control': behaviour.jwksMaxAge === null ? 'no-store' : `public, max-age=${behaviour.jwksMaxAge}`,
      });
      res.end(data);
      return;
    }
    if (pathname === '/jwks' && behaviour.jwksMaxAge !== null) {
      // After oidc-provider has set its own headers, so this one is what the client sees.
      const writeHead = res.writeHead.bind(res);
      res.writeHead = (...args) => {
        res.setHeader('cache-control', `public, max-age=${behaviour.jwksMaxAge}`);
        return writeHead(...args);
      };
    }
  }

  if (
    req.method === 'POST'
    && /^\/interaction\/[^/]+$/.test(pathname)
    && String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')
  ) {
    res.on('finish', () => log(req.method, pathname, res.statusCode));
    screenInteractionLogin(req, res).then((ok) => {
      if (ok) state.handler(req, res);
    }).catch((err) => {
      log('interaction screening error', err?.stack || err);
      if (!res.headersSent) sendJson(res, 500, { error: err.message });
    });
    return;
  }

  if (pathname.startsWith('/test/')) {
    handleAdmin(req, res, pathname).catch((err) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) log('admin error', err?.stack || err);
      if (!res.headersSent) sendJson(res, status, { error: err.message });
      else res.end();
    });
    return;
  }

  res.on('finish', () => log(req.method, req.url.split('?')[0], res.statusCode));
  state.handler(req, res);
}

// ---------------------------------------------------------------------------
// Startup / shutdown
// ---------------------------------------------------------------------------

function parsePort(argv) {
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    let value;
    if (arg === '--port') value = argv[i + 1];
    else if (arg.startsWith('--port=')) value = arg.slice('--port='.length);
    else continue;
    const port = Number(value);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new Error(`invalid --port ${value}`);
    }
    return port;
  }
  return 0;
}

function argValue(argv, name) {
  const index = argv.indexOf(name);
  if (index >= 0) return argv[index + 1];
  const prefixed = argv.find((arg) => arg.startsWith(`${name}=`));
  return prefixed ? prefixed.slice(name.length + 1) : undefined;
}

async function main() {
  const argv = process.argv.slice(2);
  const port = parsePort(argv);
  const tlsCert = argValue(argv, '--tls-cert');
  const tlsKey = argValue(argv, '--tls-key');
  if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new Error('--tls-cert and --tls-key go together');
  statePath = argValue(argv, '--state');
  const saved = loadState();
  const [oidc, jose, key] = await Promise.all([
    import('oidc-provider'),
    import('jose'),
    saved ?? nextSigningKey({ spare: false }),
  ]);
  ({ default: Provider, errors } = oidc);
  ({ CompactSign } = jose);
  state.key = key;
  saveState();

  // --date-offset-secs N: every answer's Date header is N seconds off this machine's clock, as a provider whose
  // clock drifted would send it (`rust-api-axum doctor` compares it with its own).
  const dateOffsetMs = Number(argValue(argv, '--date-offset-secs') ?? 0) * 1000;
  if (!Number.isFinite(dateOffsetMs)) throw new Error('--date-offset-secs takes a number of seconds');
  const handle = dateOffsetMs === 0 ? onRequest : (req, res) => {
    res.setHeader('Date', new Date(Date.now() + dateOffsetMs).toUTCString());
    return onRequest(req, res);
  };
  const server = tlsCert
    ? https.createServer({ cert: fs.readFileSync(tlsCert), key: fs.readFileSync(tlsKey) }, handle)
    : http.createServer(handle);
  server.keepAliveTimeout = 5000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actualPort = server.address().port;
  state.issuer = `${tlsCert ? 'https' : 'http'}://127.0.0.1:${actualPort}`;
  installProvider();

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    log(`received ${signal}, shutting down`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  log(`listening on ${state.issuer} (kid ${state.key.kid}), ready ${Math.round(performance.now())} ms after process start`);
  process.stdout.write(`${JSON.stringify({ issuer: state.issuer, port: actualPort })}\n`);
  // only now (not competing with startup for CPU) prepare the next rotation key
  prepareSpareKey();
}

main().catch((err) => {
  log('fatal', err?.stack || err);
  process.exit(1);
});

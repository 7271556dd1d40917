// The whole MCP authorization flow with the official TypeScript SDK's own OAuth client
// (`OAuthClientProvider` + `StreamableHTTPClientTransport`), against an authflow-protected notes server:
//
//   401 -> RFC 9728 discovery -> RFC 8414 metadata -> dynamic registration -> authorization code + PKCE
//   (the "browser" is scripted below: login form with its CSRF field and cookies, then consent)
//   -> token exchange -> tools/call create_note, list_notes -> a refresh through the SDK's refresh path
//   (the stored access token is spoiled, the server answers 401, the SDK refreshes) -> list_notes again.
//
// Environment: MCP_URL, AUTHFLOW_USERNAME, AUTHFLOW_PASSWORD, REDIRECT_URL (optional).
// Prints progress to stderr and one line `RESULT {json}` to stdout; exits non-zero on any failure.
// Driven by crates/authflow/tests/clients.rs.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

const MCP_URL = need('MCP_URL');
const USERNAME = need('AUTHFLOW_USERNAME');
const PASSWORD = need('AUTHFLOW_PASSWORD');
const REDIRECT_URL = process.env.REDIRECT_URL ?? 'http://127.0.0.1:33418/callback';

const log = (...args) => console.error('[ts]', ...args);

/** A minimal browser: a cookie jar, manual redirects, and HTML forms filled in as a person would. */
class ScriptedBrowser {
  constructor() {
    this.cookies = new Map();
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  remember(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async request(url, init = {}) {
    const headers = { ...(init.headers ?? {}), cookie: this.cookieHeader(), 'sec-fetch-site': init.site ?? 'none' };
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.remember(response);
    return response;
  }

  /** Follow the authorization request until it redirects to `redirectUrl`; returns that URL. */
  async authorize(authorizationUrl, redirectUrl) {
    let response = await this.request(authorizationUrl);
    let pageUrl = new URL(authorizationUrl);
    const seen = [];
    for (let step = 0; step < 10; step++) {
      if (response.status >= 300 && response.status < 400) {
        const location = new URL(response.headers.get('location'), pageUrl);
        if (location.href.startsWith(redirectUrl)) return location;
        seen.push(`redirect ${location.pathname}`);
        pageUrl = location;
        response = await this.request(location, { site: 'same-origin' });
        continue;
      }
      const html = await response.text();
      if (response.status !== 200) throw new Error(`authorization page ${pageUrl} answered ${response.status}: ${html.slice(0, 300)}`);
      const form = parseForm(html);
      if (!form) throw new Error(`no form on ${pageUrl}: ${html.slice(0, 300)}`);
      if ('password' in form.fields) {
        form.fields.username = USERNAME;
        form.fields.password = PASSWORD;
        seen.push('login');
      } else if (form.buttons.includes('approve')) {
        form.fields.decision = 'approve';
        seen.push('consent');
      } else {
        throw new Error(`unexpected form on ${pageUrl}: ${JSON.stringify(form)}`);
      }
      if (!form.fields.csrf_token) throw new Error('the form carries no CSRF token');
      const action = new URL(form.action, pageUrl);
      pageUrl = action;
      response = await this.request(action, {
        method: 'POST',
        site: 'same-origin',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: action.origin },
        body: new URLSearchParams(form.fields).toString(),
      });
    }
    throw new Error(`no redirect to the client after: ${seen.join(', ')}`);
  }
}

const decode = (s) =>
  s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&#x27;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const attr = (tag, name) => {
  const m = tag.match(new RegExp(`\\s${name}="([^"]*)"`));
  return m ? decode(m[1]) : undefined;
};

/** The first form of a page: its action, its named inputs, and the values of its submit buttons. */
function parseForm(html) {
  const form = html.match(/<form\b[^>]*>([\s\S]*?)<\/form>/);
  if (!form) return undefined;
  const fields = {};
  for (const [tag] of form[1].matchAll(/<input\b[^>]*>/g)) {
    const name = attr(tag, 'name');
    if (name) fields[name] = attr(tag, 'value') ?? '';
  }
  const buttons = [...form[1].matchAll(/<button\b[^>]*>/g)].map(([tag]) => attr(tag, 'value')).filter(Boolean);
  return { action: attr(form[0].match(/<form\b[^>]*>/)[0], 'action'), fields, buttons };
}

/** The SDK's `OAuthClientProvider`, kept in memory; the user agent is the scripted browser. */
class Provider {
  constructor() {
    this.browser = new ScriptedBrowser();
    this.info = undefined;
    this.stored = undefined;
    this.verifier = undefined;
    this.code = undefined;
    this.tokenSaves = 0;
    this.authorizations = 0;
    this.authorizationUrl = undefined;
  }
  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    return {
      client_name: 'authflow e2e (MCP TypeScript SDK)',
      redirect_uris: [REDIRECT_URL],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info) {
    this.info = info;
  }
  tokens() {
    return this.stored;
  }
  saveTokens(tokens) {
    this.stored = tokens;
    this.tokenSaves += 1;
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
  async redirectToAuthorization(url) {
    this.authorizations += 1;
    this.authorizationUrl = url.href;
    const callback = await this.browser.authorize(url.href, REDIRECT_URL);
    if (callback.searchParams.get('error')) throw new Error(`authorization refused: ${callback.search}`);
    this.code = callback.searchParams.get('code');
    this.callbackIss = callback.searchParams.get('iss');
  }
}

/** Connect an MCP client; on the first 401 the SDK runs the whole authorization, then we reconnect. */
async function connect(provider) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider });
    const client = new Client({ name: 'authflow-e2e-ts', version: '1.0.0' });
    try {
      await client.connect(transport);
      return client;
    } catch (e) {
      if (!(e instanceof UnauthorizedError) || provider.code === undefined) throw e;
      log('authorization done in the browser; exchanging the code');
      await transport.finishAuth(provider.code);
      provider.code = undefined;
    }
  }
  throw new Error('still unauthorized after authorizing');
}

function text(result) {
  if (result.isError) throw new Error(`tool error: ${JSON.stringify(result.content)}`);
  return result.content[0].text;
}

const provider = new Provider();
let client = await connect(provider);
const tools = (await client.listTools()).tools.map((t) => t.name).sort();
log('tools', tools);
const created = JSON.parse(text(await client.callTool({ name: 'create_note', arguments: { title: 'from ts', body: 'written by the TypeScript SDK' } })));
const listed = JSON.parse(text(await client.callTool({ name: 'list_notes', arguments: {} })));
await client.close();
const before = provider.stored;

// Spoil the access token: the server answers 401 invalid_token and the SDK refreshes on its own.
provider.stored = { ...before, access_token: 'af_at_spoiled0000000000000000000000000000000000' };
client = await connect(provider);
const afterRefresh = JSON.parse(text(await client.callTool({ name: 'list_notes', arguments: {} })));
await client.close();
const after = provider.stored;

const result = {
  tools,
  client_id: provider.info?.client_id,
  authorization_url: provider.authorizationUrl,
  callback_iss: provider.callbackIss,
  authorizations: provider.authorizations,
  token_saves: provider.tokenSaves,
  scope: after.scope,
  created,
  listed,
  after_refresh: afterRefresh,
  access_token_rotated: after.access_token !== before.access_token,
  refresh_token_rotated: !!after.refresh_token && after.refresh_token !== before.refresh_token,
};
console.log(`RESULT ${JSON.stringify(result)}`);

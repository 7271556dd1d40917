// A real OpenID Connect provider for authflow's upstream-identity tests: node-oidc-provider on a loopback
// port, with one static confidential client, ES256 ID tokens and the development login/consent pages
// (any login name is accepted; the tests drive the forms over HTTP).
//
// Environment: REDIRECT_URI (authflow's callback), CLIENT_ID, CLIENT_SECRET, AUTH_METHOD
// (client_secret_basic | client_secret_post). Prints `ISSUER <url>` once it listens.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const { REDIRECT_URI, CLIENT_ID, CLIENT_SECRET } = process.env;
const AUTH_METHOD = process.env.AUTH_METHOD || 'client_secret_basic';

// The people this provider knows; any other login gets an unverified address.
const PEOPLE = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice' },
  mallory: { email: 'mallory@evil.example', email_verified: true, name: 'Mallory' },
};

let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = createServer((req, res) => handler(req, res));
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: AUTH_METHOD,
      // authflow verifies RS256, PS256, ES256 and EdDSA; ES256 here (upstream_oidc.rs's stand-in signs RS256).
      id_token_signed_response_alg: 'ES256',
    }],
    jwks: { keys: [{ ...key, kid: 'es256-test', alg: 'ES256', use: 'sig' }] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    // Put the scope's claims (email) in the ID token itself, as most hosted providers do.
    conformIdTokenClaims: false,
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    async findAccount(ctx, id) {
      const person = PEOPLE[id] || { email: `${id}@unknown.example`, email_verified: false, name: id };
      return { accountId: id, async claims() { return { sub: id, ...person }; } };
    },
  });
  handler = provider.callback();
  process.stdout.write(`ISSUER ${issuer}\n`);
});

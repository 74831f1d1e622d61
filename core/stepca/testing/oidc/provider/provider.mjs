// A real OpenID provider (panva's certified `oidc-provider`) on 127.0.0.1 for stepca's tests.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"port": 0, "client": {"client_id", "client_secret", "redirect_uris"},
//          "users": {"<login>": {"sub", "email", "email_verified", "groups"}}}
// Prints one line, {"issuer": "http://127.0.0.1:PORT"}, once it answers.
// POST /rotate-keys makes it sign with a new key, published first in the JWKS beside the
// previous one, and answers {"kid": "<new kid>"}. It listens on loopback only.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
console.info = console.warn; // oidc-provider's notices to stderr: stdout has the ready line only

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomBytes(12).toString('base64url');
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

const settings = {
  clients: [{
    ...config.client,
    // native: a loopback redirect URI matches on any port (RFC 8252, section 7.3)
    application_type: 'native',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { methods: ['S256'], required: () => true },
  scopes: ['openid', 'email', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
  // the scopes' claims go into the ID token too, not only to the userinfo endpoint
  conformIdTokenClaims: false,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  async findAccount(ctx, login) {
    if (!Object.hasOwn(config.users, login)) return undefined;
    return { accountId: login, claims: async () => ({ ...config.users[login] }) };
  },
};

let issuer;
let keys = [newSigningKey()];
let handle; // the request handler of a provider signing with keys[0]
// A provider's keys are fixed when it is made: rotating makes a new one (the in-memory store of
// sessions and codes is shared between them).
function serveWith(signingKeys) {
  keys = signingKeys;
  handle = new Provider(issuer, { ...settings, jwks: { keys } }).callback();
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/rotate-keys') {
    serveWith([newSigningKey(), keys[0]]);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ kid: keys[0].kid }));
    return;
  }
  handle(req, res);
});

await new Promise((resolve) => { server.listen(config.port ?? 0, '127.0.0.1', resolve); });
issuer = `http://127.0.0.1:${server.address().port}`;
serveWith(keys);
process.stdout.write(`${JSON.stringify({ issuer })}\n`);

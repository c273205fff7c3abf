// openid-client (a certified relying party library, which implements DPoP) against a live provider:
// authorization code + PKCE, the code redeemed with a DPoP proof, a DPoP refresh, then userinfo with
// the refreshed DPoP-bound access token. Retrying after use_dpop_nonce is openid-client's own.
//
//   node dpop_flow.mjs ISSUER CLIENT_ID REDIRECT_URI
//
// Prints {"authorization_url": ...} and waits for the callback URL (the caller drives the browser part)
// on stdin; then prints what it got as one line of JSON.
import { createInterface } from 'node:readline';
import * as client from 'openid-client';

const [issuer, clientId, redirectUri] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), {
  execute: [client.allowInsecureRequests], // the test provider listens on http://127.0.0.1
});
const keyPair = await client.randomDPoPKeyPair('ES256');
const DPoP = client.getDPoPHandle(config, keyPair);
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
});
console.log(JSON.stringify({ authorization_url: authorizationUrl.href }));

const lines = createInterface({ input: process.stdin });
const callback = await new Promise((resolve) => lines.once('line', resolve));
lines.close();

const tokens = await client.authorizationCodeGrant(
  config,
  new URL(callback),
  { pkceCodeVerifier: verifier, expectedState: state },
  undefined,
  { DPoP },
);
const subject = tokens.claims().sub;
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
const userinfo = await client.fetchUserInfo(config, refreshed.access_token, subject, { DPoP });
const jwk = await crypto.subtle.exportKey('jwk', keyPair.publicKey);
console.log(JSON.stringify({
  token_type: tokens.token_type,
  refreshed_token_type: refreshed.token_type,
  access_token: refreshed.access_token,
  refresh_token: refreshed.refresh_token,
  subject,
  userinfo,
  public_key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y },
}));

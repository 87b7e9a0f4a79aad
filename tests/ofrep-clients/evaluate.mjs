// Evaluates flags through OpenFeature's server SDK and the official OFREP provider, against a
// Rollgate relay, and prints one JSON line per case. Used by tests/relay_clients.rs.
//
//   node evaluate.mjs BASE_URL CASES.json
//
// CASES.json: [{"key": "...", "user": "..." | null, "type": "boolean" | "string",
//               "attributes": {"name": string | number | boolean | [string]}}]
// (`attributes` optional; a user of null sends no targetingKey.)
import { readFileSync } from 'node:fs';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const [baseUrl, casesFile] = process.argv.slice(2);
if (!baseUrl || !casesFile) {
  console.error('usage: node evaluate.mjs BASE_URL CASES.json');
  process.exit(2);
}
const cases = JSON.parse(readFileSync(casesFile, 'utf8'));
await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl }));
const client = OpenFeature.getClient();
for (const { key, user, type, attributes = {} } of cases) {
  if ('targetingKey' in attributes) {
    throw new Error(`case ${key}: an attribute named targetingKey would replace the user`);
  }
  const context = user === null ? { ...attributes } : { targetingKey: user, ...attributes };
  const details =
    type === 'boolean'
      ? await client.getBooleanDetails(key, false, context)
      : await client.getStringDetails(key, '', context);
  console.log(
    JSON.stringify({
      key,
      user,
      value: details.value,
      variant: details.variant ?? null,
      reason: details.reason ?? null,
      errorCode: details.errorCode ?? null,
      metadata: details.flagMetadata ?? {},
    }),
  );
}
await OpenFeature.close();

// Decrypt contacts sealed by proca-server with npm @proca/crypto, as an org's consumer does.
// stdin: {"keys": {"<public b64url>": {"private": "<b64url>"}}, "contacts": [PersonalInfo, ...]}
// stdout: [{"parsed": decryptPersonalInfo(...), "text": decrypt(...)}, ...]
// NODE_PATH must point at the node_modules folder that holds @proca/crypto.
"use strict";

const crypto = require("@proca/crypto");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  const { keys, contacts } = JSON.parse(input);
  const keyStore = crypto.loadKeyStoreFromString(JSON.stringify(keys));
  const results = contacts.map((pii) => ({
    parsed: crypto.decryptPersonalInfo(pii, keyStore),
    text: crypto.decrypt(
      pii.payload,
      pii.nonce,
      keys[pii.encryptKey.public].private,
      pii.signKey.public,
    ),
  }));
  process.stdout.write(JSON.stringify(results));
});

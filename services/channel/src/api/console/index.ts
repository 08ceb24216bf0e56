/*~ The operator's console: one HTML page, its script, style and icon, served by the control API
 * without a token because they hold no data. The page asks the operator for a token and reads
 * the /v1 routes with it from the browser, like any other API client. */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyPluginAsync } from "fastify";

/**
 * tsc copies no assets, so the files stay in src/ and are found from the package root: three
 * levels above this module both in src/api/console/ (tsx, vitest) and in dist/api/console/.
 */
export const CONSOLE_STATIC_DIR = fileURLToPath(new URL("../../../src/api/console/static/", import.meta.url));

/** No inline script or style, nothing from another origin, no framing, no form posting anywhere. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * The QR code module the page imports (qrcode-generator's ES module build, as published): served
 * from node_modules, where the service's dependency put it, never copied into the repository.
 */
export const QRCODE_MODULE = ((): string => {
  try {
    // Its "require" entry is dist/qrcode.js; the ES module is beside it.
    return join(dirname(createRequire(import.meta.url).resolve("qrcode-generator")), "qrcode.mjs");
  } catch {
    return "qrcode-generator/dist/qrcode.mjs (not installed)";
  }
})();

const FILES: ReadonlyArray<{ url: string; file: string; type: string; path?: string }> = [
  { url: "/console", file: "index.html", type: "text/html; charset=utf-8" },
  { url: "/console/app.js", file: "app.js", type: "text/javascript; charset=utf-8" },
  { url: "/console/app.css", file: "app.css", type: "text/css; charset=utf-8" },
  { url: "/console/icon.svg", file: "icon.svg", type: "image/svg+xml" },
  {
    url: "/console/qrcode.js",
    file: "qrcode.js",
    type: "text/javascript; charset=utf-8",
    path: QRCODE_MODULE,
  },
];

export interface ConsoleOptions {
  /** Where the page's files are; tests point it elsewhere. Default: CONSOLE_STATIC_DIR. */
  dir?: string;
}

/**
 * Registers GET /console and its files as public routes, hidden from the OpenAPI document. The
 * files are read once here; if they are missing (an image built without them) the API still
 * starts and the console routes answer 503 saying where the files were looked for.
 */
export const consolePage: FastifyPluginAsync<ConsoleOptions> = async (app, opts) => {
  const dir = opts.dir ?? CONSOLE_STATIC_DIR;
  for (const f of FILES) {
    const path = f.path ?? join(dir, f.file);
    const body = await readFile(path).catch((e: unknown) => {
      const why = e instanceof Error ? e.message : String(e);
      app.log.error(`operator console: cannot read ${path} (${why}); /console answers 503`);
      return undefined;
    });
    app.get(f.url, { config: { access: "public" }, schema: { hide: true } }, async (req, reply) => {
      void reply
        .header("content-security-policy", CONSOLE_CSP)
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-cache");
      if (body === undefined)
        return reply.code(503).send({
          error: {
            code: "CONSOLE_UNAVAILABLE",
            message: f.path
              ? `the console's file ${f.file} is not installed (looked for ${f.path}); install the service's dependencies (qrcode-generator)`
              : `the console's file ${f.file} is not installed (looked in ${dir}); ship services/channel/src/api/console/static with the service`,
            requestId: req.id,
          },
        });
      return reply.type(f.type).send(body);
    });
  }
};

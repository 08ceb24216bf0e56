/**
 * A development PKI for the mTLS between the signer and its clients: one CA, a server certificate
 * for "localhost" (and IP 127.0.0.1), and a client certificate per client with the subject CN the
 * signer's SIGNER_CLIENTS names (LAB_SIGNER_CLIENTS, as deploy/ does), made by the openssl CLI.
 * For labs and tests only: short-lived, unencrypted keys.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface DevPki {
  readonly dir: string;
  /** Paths of the PEM files. */
  readonly files: {
    readonly ca: string;
    readonly serverCert: string;
    readonly serverKey: string;
    readonly clientCert: string;
    readonly clientKey: string;
    readonly gatewayCert: string;
    readonly gatewayKey: string;
    readonly towerCert: string;
    readonly towerKey: string;
  };
  readonly ca: Buffer;
  readonly serverCert: Buffer;
  readonly serverKey: Buffer;
  /** The channel service's client certificate (CN ln-channel). */
  readonly clientCert: Buffer;
  readonly clientKey: Buffer;
  /** The server name to verify (the lab dials 127.0.0.1, which the certificate also names). */
  readonly serverName: string;
}

export interface DevPkiOptions {
  /** Validity in days. Default 30. */
  readonly days?: number;
  /** DNS names of the server certificate. Default ["localhost"]. */
  readonly dnsNames?: readonly string[];
  /** IP addresses of the server certificate. Default ["127.0.0.1"]. */
  readonly ips?: readonly string[];
  /** The openssl binary. Default "openssl" from PATH. */
  readonly openssl?: string;
}

export class OpensslMissingError extends Error {
  override readonly name = "OpensslMissingError";
}

function run(openssl: string, dir: string, args: string[]): void {
  try {
    execFileSync(openssl, args, { cwd: dir, stdio: "pipe" });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === "ENOENT")
      throw new OpensslMissingError(
        `the openssl CLI (${openssl}) was not found: install it (Debian/Ubuntu: apt-get install openssl; ` +
          "macOS: brew install openssl) or put it on PATH",
      );
    const stderr = err.stderr?.toString().trim() ?? "";
    throw new Error(`openssl ${args.slice(0, 2).join(" ")} failed: ${stderr || err.message}`);
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** Each signer client's certificate CN and role (the signer's SIGNER_CLIENTS). */
export const LAB_SIGNER_CLIENTS = "ln-channel=channel,ln-peer=gateway,ln-watchtower=tower";

/** The signer's clients: the certificate files of each in a DevPki. */
export type SignerClientName = "channel" | "gateway" | "tower";

/**
 * Makes ca.crt, server.{crt,key}, and client.{crt,key} (CN ln-channel), gateway.{crt,key}
 * (ln-peer), tower.{crt,key} (ln-watchtower) in `dir` (created if missing).
 */
export function makeDevPki(dir: string, opts: DevPkiOptions = {}): DevPki {
  const openssl = opts.openssl ?? "openssl";
  const days = String(opts.days ?? 30);
  const dns = opts.dnsNames ?? ["localhost"];
  const ips = opts.ips ?? ["127.0.0.1"];
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  run(openssl, dir, ["version"]);
  run(openssl, dir, [
    "req",
    "-x509",
    ...EC,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-subj",
    "/CN=ln-lab dev CA",
    "-days",
    days,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const leaf = (name: string, ext: string, cn = name): void => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    run(openssl, dir, ["req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`]);
    run(openssl, dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      days,
      "-extfile",
      `${name}.ext`,
    ]);
    rmSync(join(dir, `${name}.csr`), { force: true });
    rmSync(join(dir, `${name}.ext`), { force: true });
    chmodSync(join(dir, `${name}.key`), 0o600);
  };
  const san = [...dns.map((d) => `DNS:${d}`), ...ips.map((ip) => `IP:${ip}`)].join(",");
  leaf("server", `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  leaf("client", "extendedKeyUsage=clientAuth\n", "ln-channel");
  leaf("gateway", "extendedKeyUsage=clientAuth\n", "ln-peer");
  leaf("tower", "extendedKeyUsage=clientAuth\n", "ln-watchtower");
  chmodSync(join(dir, "ca.key"), 0o600);
  const files = {
    ca: join(dir, "ca.crt"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.crt"),
    clientKey: join(dir, "client.key"),
    gatewayCert: join(dir, "gateway.crt"),
    gatewayKey: join(dir, "gateway.key"),
    towerCert: join(dir, "tower.crt"),
    towerKey: join(dir, "tower.key"),
  };
  return {
    dir,
    files,
    ca: readFileSync(files.ca),
    serverCert: readFileSync(files.serverCert),
    serverKey: readFileSync(files.serverKey),
    clientCert: readFileSync(files.clientCert),
    clientKey: readFileSync(files.clientKey),
    serverName: dns[0] ?? ips[0] ?? "localhost",
  };
}

/** The signer server's env (SIGNER_TLS_*, SIGNER_CLIENTS) for a PKI. */
export function signerServerTlsEnv(pki: DevPki): Record<string, string> {
  return {
    SIGNER_TLS_CA: pki.files.ca,
    SIGNER_TLS_CERT: pki.files.serverCert,
    SIGNER_TLS_KEY: pki.files.serverKey,
    SIGNER_CLIENTS: LAB_SIGNER_CLIENTS,
  };
}

/** A signer client's env (SIGNER_CLIENT_*, SIGNER_SERVERNAME) for a PKI: that client's certificate. */
export function signerClientTlsEnv(pki: DevPki, client: SignerClientName): Record<string, string> {
  const files: Record<SignerClientName, readonly [string, string]> = {
    channel: [pki.files.clientCert, pki.files.clientKey],
    gateway: [pki.files.gatewayCert, pki.files.gatewayKey],
    tower: [pki.files.towerCert, pki.files.towerKey],
  };
  const [cert, key] = files[client];
  return {
    SIGNER_CLIENT_CA: pki.files.ca,
    SIGNER_CLIENT_CERT: cert,
    SIGNER_CLIENT_KEY: key,
    SIGNER_SERVERNAME: pki.serverName,
  };
}

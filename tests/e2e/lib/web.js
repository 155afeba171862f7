// The web page and JSON API (issue #17, §12): a server with Prosody's HTTP service on
// 127.0.0.1 only (plain HTTP and HTTPS with a self-signed certificate made at test time),
// a plain HTTP(S) client that ignores the certificate, and headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core.

import { execFile } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";

import { chromium } from "playwright-core";

import { freePort } from "./server.js";

/** What lib/server.js disables, but for mod_http. */
const MODULES_DISABLED = ["s2s", "s2s_auth_certs", "s2s_bidi", "dialback"];

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const WEB_PATH = "/clients";

/** A self-signed certificate for localhost and 127.0.0.1, written into `dir`. */
export function makeCertificate(dir) {
  const cert = path.join(dir, "web.crt");
  const key = path.join(dir, "web.key");
  return new Promise((resolve, reject) => {
    execFile("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert,
    ], (err, _stdout, stderr) => (err ? reject(new Error(`openssl failed: ${stderr}`)) : resolve({ cert, key })));
  });
}

/**
 * useServer() options for a server with HTTP on `ports.http` and HTTPS on `ports.https`
 * (127.0.0.1 only). `web`: client_management_web; `trustedProxies` (default: Prosody's own,
 * 127.0.0.1 and ::1); `options`: more VirtualHost options.
 */
export function webServerOptions(ports, { web = true, trustedProxies, options = {}, extraGlobal = {} } = {}) {
  return {
    options: { ...(web ? { client_management_web: true } : {}), ...options },
    // Loaded whether or not anything serves HTTP: "off" must mean 404, not a closed port.
    extraModules: ["http"],
    globalOptions: (server) => ({
      http_ports: [ports.http],
      https_ports: [ports.https],
      http_interfaces: ["127.0.0.1"],
      https_interfaces: ["127.0.0.1"],
      https_ssl: { certificate: path.join(server.dir, "certs", "web.crt"), key: path.join(server.dir, "certs", "web.key") },
      modules_disabled: MODULES_DISABLED,
      ...(trustedProxies ? { trusted_proxies: trustedProxies } : {}),
      ...extraGlobal,
    }),
    beforeStart: async (server) => {
      const { cert, key } = await makeCertificate(path.join(server.dir, "certs"));
      if (server.ids) {
        for (const f of [cert, key]) fs.chownSync(f, server.ids.uid, server.ids.gid);
      }
    },
  };
}

export async function webPorts() {
  const http = await freePort();
  let https;
  do https = await freePort(); while (https === http);
  return { http, https };
}

/**
 * One HTTP(S) request, certificate not checked → { status, headers, body, json }.
 * `headers` are sent as given (a Host header is added from the URL by Node).
 */
export function request(url, { method = "GET", headers = {}, body } = {}) {
  const u = new URL(url);
  const lib = u.protocol === "https:" ? https : http;
  if (body !== undefined) headers = { ...headers, "content-length": String(Buffer.byteLength(body)) };
  return new Promise((resolve, reject) => {
    const req = lib.request(u, { method, headers, rejectUnauthorized: false, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
    });
    req.on("error", reject);
    req.setTimeout(15000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** The JSON API with a bearer token. */
export function api(base, token, method, endpoint, body) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers["content-type"] = "application/json";
  return request(`${base}${WEB_PATH}/api/${endpoint}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Form fields → application/x-www-form-urlencoded. */
export const form = (fields) => new URLSearchParams(fields).toString();

/** The session cookie of a Set-Cookie header list, as "name=value". */
export function sessionCookie(res) {
  const set = [].concat(res.headers["set-cookie"] || []);
  const line = set.find((c) => c.startsWith("__Host-client_management="));
  return line ? line.split(";")[0] : null;
}

/** Headless Chromium (no sandbox: tests run as root); playwright gives it a fresh profile. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/**
 * A fresh browser context (own cookies) and page, with every dialog and every request
 * recorded: `dialogs`, `requests` (URLs).
 */
export async function newPage(browser, { width = 1100, height = 900 } = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width, height } });
  const page = await context.newPage();
  const dialogs = [];
  const requests = [];
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss().catch(() => {});
  });
  page.on("request", (r) => requests.push(r.url()));
  return { context, page, dialogs, requests };
}

/** Log in through the page's form; returns the response of the page the browser lands on. */
export async function browserLogin(page, base, { user, password }) {
  await page.goto(`${base}${WEB_PATH}`);
  await page.fill("#username", user);
  await page.fill("#password", password);
  const [response] = await Promise.all([page.waitForNavigation(), page.click("form.login button")]);
  return response;
}

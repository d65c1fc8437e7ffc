// Test helpers: a free port, and the real Local Telemetry server started as a process.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "..", "..", "..");

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Start `python -m local_telemetry serve` on a temp DB and a free port; wait for /health. */
export async function startServer() {
  const dir = mkdtempSync(path.join(tmpdir(), "lt-ts-client-"));
  const port = await freePort();
  const python = process.env.LT_PYTHON ?? path.join(repoRoot, ".venv", "bin", "python");
  let output = "";
  const child = spawn(python, ["-m", "local_telemetry", "serve"], {
    cwd: repoRoot,
    env: {
      ...process.env,
      TELEMETRY_DB_PATH: path.join(dir, "telemetry.db"),
      TELEMETRY_API_HOST: "127.0.0.1",
      TELEMETRY_API_PORT: String(port),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) break;
    try {
      const response = await fetch(`${url}/health`);
      if (response.status === 200) return { url, port, stop };
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  throw new Error(`server did not start on ${url}:\n${output}`);
}

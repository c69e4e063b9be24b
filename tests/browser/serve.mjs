// Starts `molt serve` for the browser tests and benchmarks, and stops it.
import { spawn } from 'node:child_process';

const children = [];

/**
 * Runs `serveCmd` (e.g. MOLT_SERVE_CMD: "molt serve --quiet") with --root
 * ROOT --port 0 and `extra` arguments; resolves with its base URL on
 * 127.0.0.1 once it prints its "serving ... on http://HOST:PORT/" line.
 */
export function serve(serveCmd, root, extra = [], timeoutMs = 20000) {
  const [cmd, ...args] = serveCmd.split(/\s+/);
  const child = spawn(cmd, [...args, '--root', root, '--port', '0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  return new Promise((res, rej) => {
    let out = '';
    const timer = setTimeout(() => rej(new Error(`${serveCmd} printed no "serving ... on http://..." line within ${timeoutMs / 1000} s; stderr: ${err}`)), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); rej(new Error(`cannot start ${cmd}: ${e.message}`)); });
    child.on('exit', (c) => { clearTimeout(timer); rej(new Error(`${serveCmd} exited with ${c} before serving; stderr: ${err}`)); });
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      const m = out.slice(0, nl).match(/^serving (.+) on http:\/\/(\S+):(\d+)\/\s*$/);
      if (!m) return rej(new Error(`unexpected first line from ${serveCmd}: ${JSON.stringify(out.slice(0, nl))}`));
      // Whatever address it bound, talk to it over loopback only.
      res(`http://127.0.0.1:${m[3]}/`);
    });
  });
}

/** Stops every server serve() started. */
export function stopServers() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}

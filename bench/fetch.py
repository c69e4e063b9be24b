#!/usr/bin/env python3
"""Benchmarks `molt fetch`; prints Markdown tables (BENCHMARKS.md).

(a) Cold fetch throughput: a registry holding one unit ("big@1.0.0",
    x86_64-linux-gnu) whose artifact is S MiB of random bytes (default 256),
    made from the fixture's registry (manifest and signatures by stock
    `minisign -S -l`, the snapshot re-signed); served by `molt serve` and by
    nginx on 127.0.0.1. N samples (default 7) of `molt fetch` into an empty
    cache (snapshot, index, manifest, signature, schemas and the artifact,
    every check), side by side (alternating) with
    `curl -s URL | openssl dgst -sha256` of the artifact alone, and
    `curl -s -o FILE URL` (moving the bytes, no hashing).
(b) Warm fetch: the same `molt fetch` with the artifact already cached (it is
    hashed again on every read) next to `openssl dgst -sha256` of the cached
    file.
(c) Verify+load vs bare dlopen: a small C program (built here with cc
    against libmolt) times, in one process, molt_runtime_open +
    molt_unit_load(hello@0.1.0) + molt_unit_free + molt_runtime_free with a
    warm cache and a file:// registry, against dlopen + dlclose of the same
    cached .so.

usage: bench/fetch.py [--mib S] [--samples N] [--loads K] [--molt PATH]
                      [--fixture DIR] [--build DIR] [--nginx PATH] [--compare MOLT]
--compare adds a cold-fetch row for another molt binary (e.g. an older build).
Needs a fixture (scripts/fixture: dev.key, dev.pub, registry/), curl,
openssl, minisign, cc; nginx is optional.
"""
import argparse, hashlib, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIPLE = "x86_64-linux-gnu"

HARNESS = r"""
#include "molt/molt.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	const char *keys[1];
	int n, i;

	if (argc != 6)
		return 2;
	keys[0] = argv[2];
	n = (int)strtol(argv[5], NULL, 10);
	for (i = -1; i < n; i++) { /* i == -1: warm-up, not printed */
		molt_options o = MOLT_OPTIONS_INIT;
		molt_runtime *rt = NULL;
		molt_unit *u = NULL;
		double t0 = now_ms();
		o.registry = argv[1];
		o.trusted_keys = keys;
		o.trusted_keys_count = 1;
		o.cache_dir = argv[3];
		if (molt_runtime_open(&rt, &o) || molt_unit_load(&u, rt, "hello", "0.1.0")) {
			fprintf(stderr, "%s\n", molt_error_last());
			return 1;
		}
		molt_unit_free(u);
		molt_runtime_free(rt);
		if (i >= 0)
			printf("load %.4f\n", now_ms() - t0);
	}
	for (i = -1; i < n; i++) {
		double t0 = now_ms();
		void *h = dlopen(argv[4], RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			fprintf(stderr, "%s\n", dlerror());
			return 1;
		}
		dlclose(h);
		if (i >= 0)
			printf("dlopen %.4f\n", now_ms() - t0);
	}
	return 0;
}
"""


def stats(times):
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def sha(b):
    return hashlib.sha256(b).hexdigest()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def minisign(key, path, comment):
    subprocess.run(["minisign", "-S", "-l", "-s", key, "-m", path, "-x", path + ".minisig", "-t", comment],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    with open(path + ".minisig", "rb") as f:
        sig = f.read()
    os.unlink(path + ".minisig")
    return sig


def put_blob(root, data):
    h = sha(data)
    with open(os.path.join(root, "blobs", "sha256", h), "wb") as f:
        f.write(data)
    return "sha256:" + h


def make_registry(root, fixture, mib):
    """The fixture's registry plus big@1.0.0 with an artifact of `mib` MiB."""
    src, key = os.path.join(fixture, "registry"), os.path.join(fixture, "dev.key")
    shutil.copytree(src, root, symlinks=False)
    idx = json.load(open(os.path.join(src, "index", "hello.json")))
    e = idx["versions"]["0.1.0"][TRIPLE]
    man = json.load(open(os.path.join(src, "blobs", "sha256", e["manifest"][7:])))
    data = os.urandom(mib << 20)
    man["name"], man["version"] = "big", "1.0.0"
    man["artifact"] = {"digest": put_blob(root, data), "size": len(data),
                       "media_type": man["artifact"]["media_type"]}
    man["depends"] = []
    mb = json.dumps(man, indent="\t").encode()
    md = put_blob(root, mb)
    tmp = os.path.join(root, "manifest.tmp")
    with open(tmp, "wb") as f:
        f.write(mb)
    sig = put_blob(root, minisign(key, tmp, "molt unit big@1.0.0 %s %s" % (TRIPLE, md)))
    os.unlink(tmp)
    ib = json.dumps({"format": 1, "name": "big", "versions": {"1.0.0": {TRIPLE: {
        "manifest": md, "size": len(mb), "signatures": [sig], "signature": sig, "yanked": False}}}},
        indent="\t").encode()
    with open(os.path.join(root, "index", "big.json"), "wb") as f:
        f.write(ib)
    snap_path = os.path.join(root, "snapshot.json")
    snap = json.load(open(snap_path))
    snap["version"] += 1
    snap["indexes"]["big"] = {"digest": "sha256:" + sha(ib), "size": len(ib)}
    snap["indexes"] = dict(sorted(snap["indexes"].items()))
    sb = json.dumps(snap, indent="\t").encode()
    with open(snap_path, "wb") as f:
        f.write(sb)
    ssig = minisign(key, snap_path, "molt snapshot %d sha256:%s" % (snap["version"], sha(sb)))
    for name in os.listdir(root):
        if name.startswith("snapshot.json.") and name.endswith(".minisig"):
            with open(os.path.join(root, name), "wb") as f:
                f.write(ssig)
    with open(snap_path + ".minisig", "wb") as f:
        f.write(ssig)
    return man["artifact"]["digest"][7:], len(data)


def start_molt_serve(molt, site):
    p = subprocess.Popen([molt, "serve", "--quiet", "--port", "0", "--root", site],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("serving"):
        p.kill()
        sys.exit("molt serve did not start: %r" % line)
    return p, line.split(" on ")[1].strip()


def start_nginx(nginx, root, d):
    os.makedirs(os.path.join(d, "tmp"))
    for _ in range(3):
        port = free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(("%sdaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n"
                     "events {{ worker_connections 64; }}\nhttp {{\n access_log off;\n sendfile on;\n"
                     " client_body_temp_path {d}/tmp/body;\n proxy_temp_path {d}/tmp/proxy;\n"
                     " fastcgi_temp_path {d}/tmp/fastcgi;\n uwsgi_temp_path {d}/tmp/uwsgi;\n"
                     " scgi_temp_path {d}/tmp/scgi;\n default_type application/octet-stream;\n"
                     " server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n")
                    .format(d=d, port=port, root=root) % ("user root;\n" if os.getuid() == 0 else ""))
        p = subprocess.Popen([nginx, "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if p.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return p, "http://127.0.0.1:%d/" % port
            except OSError:
                time.sleep(0.05)
        p.kill()
        p.wait()
    return None, None


def run(cmd, before=None, shell=False):
    if before:
        before()
    t0 = time.perf_counter()
    r = subprocess.run(cmd, shell=shell, executable="/bin/bash" if shell else None,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    if r.returncode:
        sys.exit("%s: exit %d: %s" % (cmd, r.returncode, r.stderr.decode()[:400]))
    return dt, r.stdout.decode()


def side_by_side(samples, jobs):
    """jobs: [(label, cmd, before, shell)]; one warm-up each, then rounds."""
    times = {j[0]: [] for j in jobs}
    for label, cmd, before, shell in jobs:
        run(cmd, before, shell)
    for _ in range(samples):
        for label, cmd, before, shell in jobs:
            times[label].append(run(cmd, before, shell)[0])
    return times


def table(title, nbytes, times, base):
    print("\n%s\n" % title)
    print("| command | median ms | P95 ms | median MB/s | P95 MB/s | samples | throughput vs `%s` |"
          % base.replace("|", "\\|"))
    print("|---|---:|---:|---:|---:|---:|---:|")
    bm = stats(times[base])[0]
    for label, t in times.items():
        m, p = stats(t)
        print("| `%s` | %.0f | %.0f | %.0f | %.0f | %d | %.2f |" % (
            label.replace("|", "\\|"), m, p, nbytes / 1e6 / (m / 1000), nbytes / 1e6 / (p / 1000), len(t), bm / m))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--loads", type=int, default=200)
    ap.add_argument("--build", default=os.path.join(here, "build"))
    ap.add_argument("--molt")
    ap.add_argument("--fixture", default=os.path.join(here, "build", "test"))
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--compare", help="another molt binary, timed cold as well")
    a = ap.parse_args()
    molt = a.molt or os.path.join(a.build, "runtime", "molt")
    pub = os.path.join(a.fixture, "dev.pub")
    tmp = tempfile.mkdtemp(prefix="molt-bench-fetch-")
    procs = []
    try:
        reg = os.path.join(tmp, "site", "registry")
        hexd, size = make_registry(reg, a.fixture, a.mib)
        cache = os.path.join(tmp, "cache")
        out = os.path.join(tmp, "curl.out")
        servers = []
        p, url = start_molt_serve(molt, os.path.join(tmp, "site"))
        procs.append(p)
        servers.append(("molt serve", url + "registry/"))
        if os.access(a.nginx, os.X_OK):
            p, url = start_nginx(a.nginx, reg, os.path.join(tmp, "nginx"))
            if p:
                procs.append(p)
                servers.append(("nginx", url))
        cold = lambda: shutil.rmtree(cache, ignore_errors=True)
        results = []
        for name, base in servers:
            art = base + "blobs/sha256/" + hexd
            fetch = [molt, "fetch", "-q", "--cache", cache, "-k", pub, "-r", base, "big@1.0.0"]
            jobs = [("molt fetch (cold)", fetch, cold, False)]
            if a.compare:
                jobs.append(("%s fetch (cold)" % a.compare, [a.compare] + fetch[1:], cold, False))
            t = side_by_side(a.samples, jobs + [
                ("curl | openssl dgst -sha256", "set -o pipefail; curl -sf '%s' | openssl dgst -sha256 >/dev/null" % art,
                 None, True),
                ("curl -o FILE", ["curl", "-sf", "-o", out, art], None, False),
            ])
            results.append((name, t))
            if name == "molt serve":
                cached = os.path.join(cache, "blobs", "sha256", hexd)
                run(fetch)
                warm = side_by_side(a.samples, [
                    ("molt fetch (warm)", fetch, None, False),
                    ("openssl dgst -sha256 CACHED", ["openssl", "dgst", "-sha256", cached], None, False),
                ])
        # (c) verify+load vs dlopen.
        harness = os.path.join(tmp, "load_bench")
        with open(harness + ".c", "w") as f:
            f.write(HARNESS)
        libdir = os.path.join(a.build, "runtime")
        subprocess.run(["cc", "-O2", "-o", harness, harness + ".c", "-I", os.path.join(here, "runtime", "include"),
                        "-L", libdir, "-lmolt", "-Wl,-rpath," + libdir, "-ldl"], check=True)
        lcache = os.path.join(tmp, "lcache")
        freg = os.path.join(a.fixture, "registry")
        subprocess.run([molt, "fetch", "-q", "--cache", lcache, "-k", pub, "-r", freg, "hello@0.1.0"],
                       check=True, stdout=subprocess.DEVNULL)
        idx = json.load(open(os.path.join(freg, "index", "hello.json")))
        man = json.load(open(os.path.join(freg, "blobs", "sha256",
                                          idx["versions"]["0.1.0"][TRIPLE]["manifest"][7:])))
        so = os.path.join(lcache, "blobs", "sha256", man["artifact"]["digest"][7:])
        r = subprocess.run([harness, freg, pub, lcache, so, str(a.loads)], check=True,
                           stdout=subprocess.PIPE, text=True).stdout.split("\n")
        load = [float(x.split()[1]) for x in r if x.startswith("load ")]
        dl = [float(x.split()[1]) for x in r if x.startswith("dlopen ")]
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    print("Artifact: %d MiB of random bytes (%d bytes); %d samples per row, rows run in turn;"
          " 127.0.0.1; `nproc` = %d." % (a.mib, size, a.samples, os.cpu_count()))
    for name, t in results:
        table("Cold, served by %s:" % name, size, t, "curl | openssl dgst -sha256")
    table("Warm (artifact cached; `molt fetch` still fetches the signed metadata from `molt serve`"
          " and hashes the cached artifact again):", size, warm, "openssl dgst -sha256 CACHED")
    print("\nVerify+load vs bare dlopen (hello@0.1.0, %d-byte .so, file:// registry, warm cache, "
          "%d iterations in one process):\n" % (man["artifact"]["size"], a.loads))
    print("| operation | median ms | P95 ms | ratio to dlopen |")
    print("|---|---:|---:|---:|")
    dm = stats(dl)[0]
    for label, t in (("molt_runtime_open + molt_unit_load + free", load), ("dlopen + dlclose", dl)):
        m, p = stats(t)
        print("| %s | %.3f | %.3f | %.1f |" % (label, m, p, m / dm))


if __name__ == "__main__":
    main()

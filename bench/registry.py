#!/usr/bin/env python3
"""Benchmarks the registry's publish side; prints Markdown tables (BENCHMARKS.md).

(a) `mrecipe publish` of one unit (hello, both targets) into an empty registry
    and into one already holding N units (default 10,000). The big registry is
    generated directly (index files, manifest blobs, a snapshot signed with
    stock `minisign -S -l`): the generated units share one signature blob, so
    the big registry is for timing publish and gc, not for `verify`.
(b) `mrecipe verify` throughput over a registry holding K random blobs of
    S MiB (default 20 x 16 MiB), side by side with `sha256sum` and
    `openssl dgst -sha256` over the same files (page cache warm).
(c) `mrecipe registry gc` (dry run) at N units, when the command exists.

usage: bench/registry.py [--units N] [--samples K] [--blobs K] [--blob-mib S]
                         [--mrecipe PATH] [--fixture DIR]
Needs a fixture (scripts/fixture: dev.key, dev.pub, out/, registry/).
"""
import argparse, hashlib, json, os, shutil, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stats(times):
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def timed(cmd, samples, before=None, ok=(0,)):
    times = []
    for _ in range(samples):
        if before:
            before()
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append((time.perf_counter() - t0) * 1000)
        if r.returncode not in ok:
            sys.exit("%s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stderr.decode()[:400]))
    return times


def sha(b):
    return hashlib.sha256(b).hexdigest()


def put_blob(root, data):
    h = sha(data)
    with open(os.path.join(root, "blobs", "sha256", h), "wb") as f:
        f.write(data)
    return "sha256:" + h


def sign_snapshot(root, key, version):
    snap = os.path.join(root, "snapshot.json")
    with open(snap, "rb") as f:
        d = sha(f.read())
    subprocess.run(["minisign", "-S", "-l", "-s", key, "-m", snap, "-x", snap + ".minisig",
                    "-t", "molt snapshot %d sha256:%s" % (version, d)],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)


def generate(root, src_reg, key, n):
    """n units named u00000..: index files and manifest blobs, one shared
    signature blob and artifact, then a signed snapshot listing them all."""
    os.makedirs(os.path.join(root, "blobs", "sha256"))
    os.makedirs(os.path.join(root, "index"))
    shutil.copy(os.path.join(src_reg, "registry.json"), root)
    idx = json.load(open(os.path.join(src_reg, "index", "hello.json")))
    e = idx["versions"]["0.1.0"]["x86_64-linux-gnu"]
    man = json.load(open(os.path.join(src_reg, "blobs", "sha256", e["manifest"][7:])))
    for d in [e["signature"], man["artifact"]["digest"]] + [s["digest"] for s in man["schemas"]]:
        shutil.copy(os.path.join(src_reg, "blobs", "sha256", d[7:]), os.path.join(root, "blobs", "sha256"))
    listing = {}
    for i in range(n):
        name = "u%05d" % i
        man["name"] = name
        mb = json.dumps(man, indent="\t").encode()
        md = put_blob(root, mb)
        ib = json.dumps({"format": 1, "name": name, "versions": {"1.0.0": {"x86_64-linux-gnu": {
            "manifest": md, "size": len(mb), "signature": e["signature"], "yanked": False}}}},
            indent="\t").encode()
        with open(os.path.join(root, "index", name + ".json"), "wb") as f:
            f.write(ib)
        listing[name] = {"digest": "sha256:" + sha(ib), "size": len(ib)}
    with open(os.path.join(root, "snapshot.json"), "w") as f:
        json.dump({"format": 1, "version": 1, "expires": "2099-01-01T00:00:00Z", "indexes": listing}, f, indent="\t")
    sign_snapshot(root, key, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--blobs", type=int, default=20)
    ap.add_argument("--blob-mib", type=int, default=16)
    ap.add_argument("--mrecipe", default=os.path.join(here, "build", "mrecipe", "mrecipe"))
    ap.add_argument("--fixture", default=os.path.join(here, "build", "test"))
    a = ap.parse_args()
    mr, fx = a.mrecipe, a.fixture
    key, pub, reg = os.path.join(fx, "dev.key"), os.path.join(fx, "dev.pub"), os.path.join(fx, "registry")
    tmp = tempfile.mkdtemp(prefix="molt-bench-")
    rows = []
    try:
        publish = lambda r: [mr, "publish", "-C", here, "--out", os.path.join(fx, "out"), "--registry", r,
                             "-s", key, "hello"]
        # (a) empty registry: a fresh folder per sample.
        empty = os.path.join(tmp, "empty")
        t = timed(publish(empty), a.samples, before=lambda: shutil.rmtree(empty, ignore_errors=True))
        rows.append(("publish hello (2 targets)", "empty registry", t))
        big = os.path.join(tmp, "big")
        t0 = time.perf_counter()
        generate(big, reg, key, a.units)
        gen_s = time.perf_counter() - t0
        keep = {p: open(os.path.join(big, p), "rb").read() for p in ("snapshot.json", "snapshot.json.minisig")}

        def reset():  # hello is new again: drop its index, restore the old snapshot
            p = os.path.join(big, "index", "hello.json")
            if os.path.exists(p):
                os.unlink(p)
            for k, v in keep.items():
                open(os.path.join(big, k), "wb").write(v)
        t = timed(publish(big), a.samples, before=reset)
        rows.append(("publish hello (2 targets)", "%d units" % a.units, t))
        reset()
        # (c) gc, dry run, when the command exists.
        gc = [mr, "registry", "gc", "--registry", big]
        have_gc = subprocess.run([mr, "registry", "gc", "--help"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL).returncode == 0
        if have_gc:
            rows.append(("registry gc (dry run)", "%d units" % a.units, timed(gc, a.samples, ok=(0, 1))))
        # (b) verify throughput.
        vr = os.path.join(tmp, "verify")
        shutil.copytree(reg, vr)
        files = []
        for i in range(a.blobs):
            data = os.urandom(a.blob_mib << 20)
            files.append(os.path.join(vr, "blobs", "sha256", put_blob(vr, data)[7:]))
        total = sum(os.path.getsize(os.path.join(vr, "blobs", "sha256", f))
                    for f in os.listdir(os.path.join(vr, "blobs", "sha256")))
        vs = max(3, a.samples // 2)
        tput = []
        for label, cmd in (("mrecipe verify", [mr, "verify", "-r", vr, "-k", pub]),
                           ("sha256sum", ["sha256sum"] + files),
                           ("openssl dgst -sha256", ["openssl", "dgst", "-sha256"] + files)):
            timed(cmd, 1)  # warm the page cache
            tput.append((label, total if label == "mrecipe verify" else a.blobs * (a.blob_mib << 20),
                         timed(cmd, vs)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("Generating the %d-unit registry took %.1f s.\n" % (a.units, gen_s))
    print("| workload | registry | median ms | P95 ms | samples | ratio to empty |")
    print("|---|---|---:|---:|---:|---:|")
    base = stats(rows[0][2])[0]
    for what, where, t in rows:
        m, p = stats(t)
        print("| %s | %s | %.1f | %.1f | %d | %s |" % (what, where, m, p, len(t),
                                                     "%.2f" % (m / base) if what.startswith("publish") else ""))
    if not have_gc:
        print("\n`mrecipe registry gc` does not exist in this build: not measured.")
    print("\n| tool | bytes | median ms | P95 ms | median MB/s | P95 MB/s | samples | vs openssl |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ossl = [x for x in tput if x[0].startswith("openssl")][0]
    ossl_rate = ossl[1] / 1e6 / (stats(ossl[2])[0] / 1000)
    for label, nbytes, t in tput:
        m, p = stats(t)
        rate = nbytes / 1e6 / (m / 1000)
        print("| `%s` | %d | %.0f | %.0f | %.0f | %.0f | %d | %.2f |" % (
            label, nbytes, m, p, rate, nbytes / 1e6 / (p / 1000), len(t), rate / ossl_rate))


if __name__ == "__main__":
    main()

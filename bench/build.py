#!/usr/bin/env python3
"""Benchmarks mrecipe build: no-op rebuilds and full builds, side by side
with GNU make (and ninja, when installed) doing the same compiles on an
equivalent tree. Prints a Markdown table; see BENCHMARKS.md.

usage: bench/build.py [--recipes N] [--samples K] [--mrecipe PATH]
"""
import argparse, os, random, shutil, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, cwd=None, samples=1, before=None):
    times = []
    for _ in range(samples):
        if before:
            before()
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times), p95, len(times)


def generate(root, n):
    """n native+wasm32 library recipes; each depends on up to two earlier ones."""
    rnd = random.Random(42)
    rec = os.path.join(root, "recipes")
    os.makedirs(rec)
    for d in ("schemas", "runtime"):
        os.symlink(os.path.join(here, d), os.path.join(root, d))
    make = ["CC ?= cc", "all: " + " ".join("out/lib%d.a" % i for i in range(n)), ""]
    ninja = ["rule cc", "  command = cc -O2 -fPIC -c $in -o $out",
             "rule ar", "  command = ar rcsD $out $in", ""]
    for i in range(n):
        deps = sorted(rnd.sample(range(i), min(i, rnd.randint(0, 2))))
        src = os.path.join(rec, "l%d" % i, "src")
        os.makedirs(src)
        with open(os.path.join(src, "a.c"), "w") as f:
            f.write("int l%d_f(int x) { int s = 0; for (int i = 0; i < x; i++) s += i * %d; return s; }\n" % (i, i))
        deps_json = ", ".join('{"name": "l%d", "version": "^1.0.0"}' % d for d in deps)
        with open(os.path.join(rec, "l%d" % i, "recipe.json"), "w") as f:
            f.write('{"name": "l%d", "version": "1.0.0", "summary": "generated", "license": "MIT",\n'
                    ' "kind": "library", "source": {"path": "src"}, "depends": [%s],\n'
                    ' "targets": ["native"], "build": {"sources": ["a.c"]}}\n' % (i, deps_json))
        obj, lib = "out/l%d.o" % i, "out/lib%d.a" % i
        dl = " ".join("out/lib%d.a" % d for d in deps)
        make += ["%s: recipes/l%d/src/a.c | out" % (obj, i), "\t$(CC) -O2 -fPIC -c $< -o $@",
                 "%s: %s %s" % (lib, obj, dl), "\tar rcsD $@ %s" % obj, ""]
        ninja += ["build %s: cc recipes/l%d/src/a.c" % (obj, i),
                  "build %s: ar %s%s" % (lib, obj, (" | " + dl) if dl else "")]
    make += ["out:", "\tmkdir -p out"]
    with open(os.path.join(root, "Makefile"), "w") as f:
        f.write("\n".join(make) + "\n")
    with open(os.path.join(root, "build.ninja"), "w") as f:
        f.write("\n".join(ninja) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipes", type=int, default=200)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--mrecipe", default=os.path.join(here, "build/mrecipe/mrecipe"))
    ap.add_argument("--repo", default=here, help="the recipes repository to time (default: this one)")
    a = ap.parse_args()
    mr = a.mrecipe
    rows = []
    tmp = tempfile.mkdtemp(prefix="mrecipe-bench-")
    try:
        # The repo's own recipes.
        out = os.path.join(tmp, "repo-out")
        subprocess.run([mr, "build", "-C", a.repo, "--out", out, "--all"], check=True, stdout=subprocess.DEVNULL)
        names = sorted(os.listdir(os.path.join(a.repo, "recipes")))
        rows.append(("repo recipes (%s), no-op" % ", ".join(names), "mrecipe build --all",
                     timed([mr, "build", "-C", a.repo, "--out", out, "--all"], samples=a.samples)))
        # A generated tree.
        g = os.path.join(tmp, "gen")
        generate(g, a.recipes)
        clean = lambda: shutil.rmtree(os.path.join(g, "out"), ignore_errors=True)
        for j in (1, 2):
            rows.append(("%d recipes, full build" % a.recipes, "mrecipe build -j%d" % j,
                         timed([mr, "build", "-C", g, "--out", os.path.join(g, "out"), "--all", "-j%d" % j],
                               before=clean)))
            rows.append(("%d recipes, full build" % a.recipes, "make -j%d" % j,
                         timed(["make", "-s", "-j%d" % j], cwd=g, before=clean)))
        clean()
        subprocess.run([mr, "build", "-C", g, "--out", os.path.join(g, "out"), "--all"], check=True,
                       stdout=subprocess.DEVNULL)
        rows.append(("%d recipes, no-op" % a.recipes, "mrecipe build --all",
                     timed([mr, "build", "-C", g, "--out", os.path.join(g, "out"), "--all"], samples=a.samples)))
        subprocess.run(["make", "-s"], cwd=g, check=True)
        rows.append(("%d recipes, no-op" % a.recipes, "make -q (mtime check)",
                     timed(["make", "-q"], cwd=g, samples=a.samples)))
        if shutil.which("ninja"):
            subprocess.run(["ninja", "-C", g], check=True, stdout=subprocess.DEVNULL)
            rows.append(("%d recipes, no-op" % a.recipes, "ninja -n (mtime check)",
                         timed(["ninja", "-C", g, "-n"], samples=a.samples)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # Each mrecipe row is compared with the make row of the same workload
    # and -j (the no-op rows with `make -q`).
    def jobs(c):
        return c.split("-j")[-1] if "-j" in c else ""
    base = {(w, jobs(c)): t[0] for w, c, t in rows if c.startswith("make")}
    print("| workload | command | median ms | P95 ms | samples | mrecipe / make |")
    print("|---|---|---:|---:|---:|---:|")
    for w, c, (med, p95, k) in rows:
        b = base.get((w, jobs(c)))
        ratio = "%.2f" % (med / b) if b and c.startswith("mrecipe") else ""
        print("| %s | `%s` | %.1f | %.1f | %d | %s |" % (w, c, med, p95, k, ratio))


if __name__ == "__main__":
    sys.exit(main())

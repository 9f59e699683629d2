# bench/report.py - turns the records of a benchmark run (JSON lines written
# by bench/run.lua) into the printed table and bench/results.json: medians
# with min and max, ratios pyasync / reference, PASS or MISS per target.
import json
import os
import platform
import statistics
import subprocess
import sys


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs),
            "samples": xs}


def fmt(x):
    if x is None:
        return "-"
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    if x >= 1:
        return "%.2f" % x
    return "%.3f" % x


def spread(s):
    return "%s [%s–%s]" % (fmt(s["median"]), fmt(s["min"]), fmt(s["max"]))


def machine(meta):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            return ""
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    osname = sh(". /etc/os-release && echo $PRETTY_NAME")
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "os": osname,
        "kernel": platform.release(),
        "python": sh("/usr/bin/python3 -c 'import sys; print(sys.version.split()[0])'"),
        "lua": " ".join(sh("lua5.4 -v").split()[:2]),
        "commit": sh("git rev-parse --short HEAD") + (" (dirty)" if sh("git status --porcelain -uno") else ""),
        **meta,
    }


def main(parts_path, out_path, meta_json):
    rows, values = [], []
    with open(parts_path) as f:
        for line in f:
            rec = json.loads(line)
            if "samples" in rec:
                rows.append(rec)
            else:
                values.append(rec)
    results = []
    for r in rows:
        p = stats(r["samples"])
        row = {"id": r["id"], "process": r.get("process"), "section": r["section"],
               "what": r["what"], "unit": r["unit"], "pyasync": p,
               "load_1min": r.get("load")}
        if r.get("ref_samples"):
            ref = stats(r["ref_samples"])
            row["reference"] = dict(ref, name=r["ref"])
            row["ratio"] = p["median"] / ref["median"]
            if r.get("target") is not None:
                row["target"] = r["target"]
                row["result"] = "PASS" if row["ratio"] <= r["target"] else "MISS"
        results.append(row)
    meta = machine(json.loads(meta_json) if meta_json else {})
    doc = {"machine": meta, "results": results, "memory": values,
           "targets": [{"id": r["id"], "process": r["process"], "ratio": r["ratio"],
                        "target": r["target"], "result": r["result"]}
                       for r in results if "result" in r]}
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print_table(doc)


def print_table(doc):
    m = doc["machine"]
    print("\n## pyasync benchmarks — %s, %s CPUs, %s; Python %s; %s" %
          (m["cpu"], m["cpus"], m["os"], m["python"], m["lua"]))
    print("median of %s runs [min–max]; ratio = pyasync median / reference median "
          "(lower is better); load average before/after: %s / %s\n" %
          (m.get("repeats", "?"), m.get("load_before", "?"), m.get("load_after", "?")))
    print("| benchmark | in | pyasync | reference | reference figure | ratio | target |")
    print("|---|---|---|---|---|---|---|")
    section = None
    for r in doc["results"]:
        if r["section"] != section:
            section = r["section"]
            print("| **%s** | | | | | | |" % section)
        ref = r.get("reference")
        print("| %s | %s | %s %s | %s | %s | %s | %s |" % (
            r["what"], r["process"], spread(r["pyasync"]), r["unit"],
            ref["name"] if ref else "", spread(ref) if ref else "",
            "%.2f" % r["ratio"] if "ratio" in r else "",
            ("≤ %.2f %s" % (r["target"], r["result"])) if "target" in r else ""))
    print("\n| memory | figures |")
    print("|---|---|")
    for v in doc["memory"]:
        vals = v["values"]
        keys = [k for k in ORDER if k in vals] + [k for k in vals if k not in ORDER]
        items = ", ".join("%s %s" % (k if ":" in k else k.replace("_", " "),
                                     mib(k, vals[k], v.get("unit")))
                          for k in keys)
        print("| %s (%s) | %s |" % (v["what"], v.get("process"), items))
    t = doc["targets"]
    miss = [x for x in t if x["result"] == "MISS"]
    print("\ntargets: %d PASS, %d MISS%s" % (len(t) - len(miss), len(miss),
          "".join("\n  MISS %s (%s): ratio %.2f, target %.2f" %
                  (x["id"], x["process"], x["ratio"], x["target"]) for x in miss)))


ORDER = ["start", "after_100k", "after_1m", "rss_before", "rss_in_flight", "peak_rss",
         "rss_after", "per_coroutine", "asyncio_alone_per_task",
         "start_us_per_coroutine", "finish_us_per_coroutine"]


def mib(key, x, unit=None):
    if not isinstance(x, (int, float)):
        return str(x)
    if unit == "B/coroutine":
        return "%.0f B" % x
    if unit == "objects/coroutine":
        return "%.2f" % x
    if "us_" in key:
        return "%.2f µs" % x
    if key.startswith("per_") or key.endswith("per_task"):
        return "%.0f B" % x
    return "%.1f MiB" % (x / 2**20)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")

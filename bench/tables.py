"""Markdown tables for bench/RESULTS.md from the JSON files in bench/out/ (no new measurements).

python -m bench.tables fig3 tracking baselines core_speed_cpu service_speed real_data
"""

import json
import sys
from collections import defaultdict
from typing import Any

from bench.common import OUT, fmt


def load(name: str) -> dict[str, Any]:
    return json.loads((OUT / f"{name}.json").read_text())


def machine_line(data: dict[str, Any]) -> str:
    m = data["machine"]
    dirty = m.get("uncommitted") or []
    note = f" + uncommitted {', '.join(dirty)}" if dirty else ""
    return (
        f"_`{m['command']}` at {m['time_utc']}, commit {m['commit']}{note}, {m['cpu']}, "
        f"{m['cores']} cores, torch {m['torch']} ({m['torch_threads']} thread), "
        f"load average {m['load_avg'][0]:.1f}_"
    )


def fig3(name: str) -> None:
    data = load(name)
    print(machine_line(data), "\n")
    for run, r in data["runs"].items():
        print(f"\n**{run}** ({r['seconds']:.0f} s)\n")
        print(
            "| chunk (k) | delay | 2nd-half acc | H | std ent | std batch | std ratio "
            "| noise ent | noise batch | noise ratio |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for i, c in enumerate(r["chunks"]):
            for h, v in c["per_h"].items():
                print(
                    f"| {i + 1} ({c['true_dim']}) | {fmt(c['delay'], 0)} | "
                    f"{c['second_half_accuracy']:.4f} | {h} | {v['std_entropy']:.2f} | "
                    f"{v['std_batch']:.2f} | {v['std_ratio']:.1f} | {v['noise_entropy']:.3f} | "
                    f"{v['noise_batch']:.2f} | {v['noise_ratio']:.0f} |"
                )
    if "service_vs_core" in data:
        s = data["service_vs_core"]
        print(
            f"\nservice vs core analytic: picks equal in {s['same_picks']:.2%} of batches, "
            f"max |BIC difference| {s['max_bic_diff']:.3g}"
        )


def tracking_rows(rows: list[dict[str, Any]], verdict: bool = True) -> None:
    print(
        "| stream | setting | seed | delays | 2nd-half acc | min noise ratio | min std ratio |"
        + (" passes |" if verdict else "")
    )
    print("|---|---|---|---|---|---|---|" + ("---|" if verdict else ""))
    for r in rows:
        ch = r["chunks"]
        delays = "/".join(fmt(c["delay"], 0) for c in ch)
        acc = "/".join(f"{c['second_half_accuracy']:.3f}".rstrip("0").rstrip(".") for c in ch)
        noise = "/".join(f"{c['min_noise_ratio']:.0f}" for c in ch)
        std = "/".join(f"{c['min_std_ratio']:.1f}" for c in ch)
        passed = {True: "yes", False: "no", None: "-"}[r.get("passes")]  # -: no baseline run
        tail = f" {passed} |" if verdict else ""
        print(
            f"| {r['stream']} | `{r['setting']}` | {r['seed']} | {delays} | {acc} | {noise} | "
            f"{std} |" + tail
        )


def tracking(name: str) -> None:
    data = load(name)
    print(machine_line(data), "\n")
    if "baseline" in data:
        print("\nbaseline (paper setting, chunks of 100,000 rows)\n")
        tracking_rows(data["baseline"], verdict=False)
    if "curve" in data:
        print(
            f"\ncurve (chunks of {data['chunk_rows']} rows; limits = a quarter of the baseline)\n"
        )
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in data["curve"]:
            by[r["setting"]].append(r)
        print(
            "| setting | worst delay per chunk | min 2nd-half acc | min noise ratio "
            "| passes (seeds) |"
        )
        print("|---|---|---|---|---|")
        for spec, rows in by.items():
            n = len(rows[0]["chunks"])
            worst = "/".join(
                fmt(max((r["chunks"][i]["delay"] or r["chunks"][i]["batches"]) for r in rows), 0)
                for i in range(n)
            )
            acc = min(c["second_half_accuracy"] for r in rows for c in r["chunks"])
            noise = min(c["min_noise_ratio"] for r in rows for c in r["chunks"])
            passed = sum(bool(r.get("passes")) for r in rows)
            print(f"| `{spec}` | {worst} | {acc:.3f} | {noise:.1f} | {passed}/{len(rows)} |")
    for part in ("full", "streams"):
        if part in data:
            print(f"\n{part}\n")
            tracking_rows(data[part], verdict=part == "full")
    if "bic_n" in data:
        print("\nBIC's N (picks recomputed from the same run)\n")
        print("| noise | N | delays | 2nd-half acc | most frequent 2nd-half pick |")
        print("|---|---|---|---|---|")
        for r in data["bic_n"]:
            print(f"| {r['noise']} | {r['bic_n']} | {_pick_cells(r['chunks'], 2)} |")


def baselines(name: str) -> None:
    data = load(name)
    print(machine_line(data), "\n")
    print("| method | us per batch | delays | 2nd-half acc | most frequent 2nd-half pick |")
    print("|---|---|---|---|---|")
    for r in data["results"]:
        print(f"| {r['method']} | {r['us_per_batch']:.0f} | {_pick_cells(r['chunks'], 3)} |")


def _pick_cells(chunks: list[dict[str, Any]], digits: int) -> str:
    """Table cells 'delays | 2nd-half accuracies | most frequent picks', one value per chunk."""
    delays = "/".join(fmt(c["delay"], 0) for c in chunks)
    acc = "/".join(f"{c['second_half_accuracy']:.{digits}f}" for c in chunks)
    modes = "/".join(str(c["second_half_mode"]) for c in chunks)
    return f"{delays} | {acc} | {modes}"


def core_speed(name: str) -> None:
    data = load(name)
    print(machine_line(data), "\n")
    if data.get("step"):
        print("| D | B | candidates | dimwatch (us/batch) | floor | x floor | exact | x exact | "
              "IncrementalPCA |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
    for r in data.get("step", []):
        print(f"| {r['D']} | {r['B']} | {','.join(map(str, r['candidates']))} | "
              f"{r['dimwatch_us']:.0f} | {r['floor_us']:.0f} | {r['dimwatch_over_floor']:.2f} | "
              f"{r['exact_us']:.0f} | {r['dimwatch_over_exact']:.2f} | "
              f"{fmt(r.get('ipca_us'), 0)} |")  # fmt: skip
    many = data.get("many")
    if many:
        print(f"\n{many['streams']} streams of D = 10, B = 10, us per stream-batch: one by one "
              f"{many['one_by_one_us_per_stream']:.0f} (x{many['one_by_one_over_floor']:.2f} the "
              f"floor), together {many['together_us_per_stream']:.0f} "
              f"(x{many['together_over_floor']:.2f}), floor "
              f"{many['floor_us_per_stream']:.0f}")  # fmt: skip
    if data.get("served"):
        print("\n| D | B | candidates | step + commit (ms/batch) | of which commit | no-op app: "
              "CPU / p50 latency per request (ms) | exact (ms/batch) | x no-op CPU | x no-op "
              "latency | x exact |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|")
    for r in data.get("served", []):
        print(f"| {r['D']} | {r['B']} | {','.join(map(str, r['candidates']))} | "
              f"{r['step_ms']:.2f} | {r['commit_ms']:.2f} | {r['noop_cpu_ms']:.2f} / "
              f"{r['noop_p50_ms']:.2f} | {r['exact_ms']:.2f} | {r['step_over_noop_cpu']:.2f} | "
              f"{r['step_ms'] / r['noop_p50_ms']:.2f} | {r['step_over_exact']:.2f} |")  # fmt: skip


def rows(name: str) -> None:
    data = load(name)
    print(machine_line(data), "\n")
    print("| case | seed | D | B | exact pick | rows to 1%: exact | dimwatch | x exact | "
          "IncrementalPCA | converged from | x dimwatch's rows | largest gap while converged "
          "| restarts |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in data["runs"]:
        ratio = (None if r["rows_dimwatch"] is None or r["rows_exact"] is None
                 else r["rows_dimwatch"] / r["rows_exact"])  # fmt: skip
        flag = (None if r["rows_flag"] is None or r["rows_dimwatch"] is None
                else r["rows_flag"] / r["rows_dimwatch"])  # fmt: skip
        gap = r["max_gap_while_converged_pct"]
        print(f"| {r['case']} | {r['seed']} | {r['dim']} | {r['batch']} | {r['pick']} | "
              f"{fmt(r['rows_exact'], 0)} | {fmt(r['rows_dimwatch'], 0)} | {fmt(ratio, 2)} | "
              f"{fmt(r.get('rows_ipca'), 0)} | {fmt(r['rows_flag'], 0)} | {fmt(flag, 2)} | "
              f"{'-' if gap is None else f'{gap:.2f}%'} | {r['restarts']} |")  # fmt: skip


def real_data(name: str) -> None:
    """bench/real_data.py: the cases, then per case and seed the served run against the exact
    p-PCA answer, then the sliding-window alternatives."""
    from bench.real_data import load as load_dataset

    data = load(name)
    print(machine_line(data), "\n")
    print("| case | D | candidates | bic_n | exact LL_ML per H | exact pick | margin (% of abs LL) "
          "| Minka full-data pick |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for c in data["cases"]:
        k, e = c["case"], c["exact"]
        lls = ", ".join(f"{v:.2f}" for v in e["loglik"])
        dim = k.get("dim") or load_dataset(k["dataset"]).shape[1]
        print(f"| {k['name']} | {dim} | {tuple(k['latent_dims'])} | {k['bic_n']} | {lls} | "
              f"**{e['pick']}** | {e['margin_pct_of_ll']:.2f} | "
              f"{c['runs'][0].get('windows', {}).get('minka_full_data_pick', '-')} |")  # fmt: skip
    print("\n| case | seed | last-20% right | right and stable from row | abs gap % (max H) at "
          "20k / 50k / 100k | selection converged at row (abs gap % then) | largest abs gap "
          "% while converged | alarms | ms/batch |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for c in data["cases"]:
        for r in c["runs"]:
            gaps = " / ".join(f"{max(abs(g) for g in v):.3f}" for v in r["gap_pct"].values())
            sel = r["first_converged"]["selection"]
            conv = "never" if sel is None else f"{sel['rows']} ({sel['gap_pct']:.3f})"
            print(f"| {c['case']['name']} | {r['seed']} | {r['last20_accuracy']:.4f} | "
                  f"{fmt(r['rows_until_right_and_stable'], 0)} | {gaps} | {conv} | "
                  f"{fmt(r['max_gap_while_converged_pct'], 3)} | {r['alarms']} | "
                  f"{r['ms_per_batch']:.2f} |")  # fmt: skip
    if not any("windows" in r for c in data["cases"] for r in c["runs"]):
        return
    print("\n| case | window | exact BIC right (seeds) | exact BIC ms | Minka = own full pick | "
          "Minka = exact BIC pick | Minka mode (-1: fails) | Minka fails | Minka ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for c in data["cases"]:
        for w in ("500", "2000"):
            vs = [r["windows"][w] for r in c["runs"] if "windows" in r]
            if not vs:
                continue
            cell = _joined(vs)
            print(f"| {c['case']['name']} | {w} | {cell('exact_bic_accuracy')} | "
                  f"{cell('exact_bic_ms', 2)} | {cell('minka_vs_own_full_pick')} | "
                  f"{cell('minka_vs_exact_bic_pick')} | {vs[0]['minka_mode']} | "
                  f"{' / '.join(str(v.get('minka_failed', 0.0)) for v in vs)} | "
                  f"{cell('minka_ms', 1)} |")  # fmt: skip


def _joined(rows: list[dict[str, Any]]) -> Any:
    """cell(key, digits): the values of key over rows, joined by ' / '."""

    def cell(key: str, digits: int = 3) -> str:
        return " / ".join(f"{r[key]:.{digits}f}" for r in rows)

    return cell


def service_speed(name: str) -> None:
    data = load(name)
    print(machine_line(data), "\n")
    if "load" in data:
        print(
            "| target | body | clients | streams | batches/s | p50 ms | p99 ms | errors "
            "| dimwatch / no-op |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in data["load"]:
            frac = r.get("fraction_of_noop")
            print(
                f"| {r['target']} | {r['body']} | {r['clients']} | {r['streams']} | "
                f"{r['batches_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['errors']} | {fmt(frac, 2)} |"
            )
    if "memory" in data:
        print("\n| D | streams | RSS before (MB) | RSS after (MB) | per stream (KB) |")
        print("|---|---|---|---|---|")
        for r in data["memory"]:
            print(
                f"| {r['D']} | {r['streams']} | {r['rss_before_mb']:.0f} | "
                f"{r['rss_after_mb']:.0f} | {r['per_stream_kb']:.0f} |"
            )


def main() -> None:
    for name in sys.argv[1:]:
        kind = name.split("_quick")[0]
        kind = "core_speed" if kind.startswith("core_speed") else kind
        kind = "fig3" if kind.startswith("fig3") else kind
        kind = "baselines" if kind.startswith("baselines") else kind
        kind = "tracking" if kind.startswith("tracking") else kind
        kind = "real_data" if kind.startswith("real_data") else kind
        kind = "rows" if kind.startswith("rows") else kind
        print(f"\n<!-- {name} -->")
        {
            "fig3": fig3,
            "tracking": tracking,
            "baselines": baselines,
            "core_speed": core_speed,
            "rows": rows,
            "service_speed": service_speed,
            "real_data": real_data,
        }[kind](name)


if __name__ == "__main__":
    main()

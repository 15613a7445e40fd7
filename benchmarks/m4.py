"""M4: one global forecaster over a panel of series of mixed scale, against the naive forecast and one model
per series, in the competition's metrics (sMAPE, MASE; OWA relative to the naive forecast).

    python benchmarks/m4.py --json m4.json
    python benchmarks/m4.py --select lookback=26,52 period=auto,none --per-series 36

Every series' last `horizon` training values are its validation. Each candidate (the combinations of
`--select`, forecaster settings as `TitansForecaster` spells them) is one global model fitted on the
training rows less those, scored on them by OWA (the mean of its sMAPE and MASE over the naive
forecast's); the one with the lowest is read on the test file once: the validation rows stream into its
memory (`update`, no refit) and its forecast of the next `horizon` values is scored. The peers run on the
same rows: the naive forecast (the last value, the competition's Naive2 at seasonality 1) and, on every
k-th series (`--per-series` of them), a forecaster of the chosen settings fitted on that series alone.
With `--unseen`, a second global model is fitted without those series, which then join it through `update`
with their last 2 × lookback values, as a new series would; beside it, models fitted on those values alone.
Fit seconds and the peak resident memory of the process after the global fit are reported. A table goes to
stdout, the results to `--json`.
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import polars as pl

from titans_ts.datasets.m4 import M4_HORIZON, M4_SEASONALITY, M4Series, read_m4
from titans_ts.forecasting import TitansForecaster
from titans_ts.forecasting.metrics import mase, smape

M4 = Path(__file__).resolve().parents[1].parent / "shared/data/m4"


def scores(forecast: np.ndarray, actual: np.ndarray, insample: list[np.ndarray], m: int) -> dict:
    return {"smape": smape(forecast, actual), "mase": mase(forecast, actual, insample, m)}


def owa(row: dict, naive: dict) -> float:
    """M4's overall weighted average: sMAPE and MASE, each over the naive forecast's, averaged."""
    return 0.5 * (row["smape"] / naive["smape"] + row["mase"] / naive["mase"])


def forecasts(f: TitansForecaster, ids: list[str]) -> np.ndarray:
    """The next `horizon` values of every series (S, H), in the order of `ids`."""
    p = f.predict()
    return np.stack([p.filter(pl.col("id") == k)["value"].to_numpy() for k in ids])


def last_rows(data: M4Series, n: int) -> pl.DataFrame:
    """The last `n` training values of every series (all of a shorter one), long."""
    parts = [v[-n:] for v in data.train]
    return pl.DataFrame({"id": np.repeat(data.ids, [len(p) for p in parts]), "value": np.concatenate(parts)})


def fit_global(data: M4Series, params: dict, H: int) -> tuple[TitansForecaster, float]:
    t0 = time.perf_counter()
    f = TitansForecaster(horizon=H, id_col="id", **params).fit(data.long(H))
    return f, time.perf_counter() - t0


def alone(series: np.ndarray, params: dict, H: int) -> tuple[np.ndarray, float]:
    """The forecast of a model of `params` fitted on `series` alone (its last `H` values streamed in after
    the fit, as the global model gets them), and its fit seconds."""
    t0 = time.perf_counter()
    g = TitansForecaster(horizon=H, **params).fit(series[:-H])
    secs = time.perf_counter() - t0
    return g.update(series[-H:]).predict(), secs


def sample_rows(data: M4Series, f: TitansForecaster, params: dict, picked: list[int], H: int, m: int,
                unseen: bool) -> list[dict]:
    """Test rows on the series `picked`: the global model `f`, a model fitted on each alone, the naive
    forecast; with `unseen`, also a global model fitted without them that they join (`update`) with their
    last 2 × lookback values, beside models fitted on those values alone."""
    part = [data.train[i] for i in picked]
    truth = data.test[picked]
    row = lambda model, forecast, **extra: {"model": model, "split": "test", "series": len(picked),  # noqa: E731
                                            **scores(forecast, truth, part, m), **extra}
    fits = [alone(v, params, H) for v in part]
    rows = [row("titans per series", np.stack([p for p, _ in fits]), fit_seconds=sum(s for _, s in fits)),
            row("titans global", forecasts(f, data.ids)[picked]),
            row("naive", np.stack([np.repeat(v[-1], H) for v in part]))]
    if unseen:
        n = 2 * params["lookback"]
        rest = [i for i in range(len(data.ids)) if i not in set(picked)]
        others = M4Series([data.ids[i] for i in rest], [data.train[i] for i in rest], None)
        g, secs = fit_global(others, params, H)
        g.update(last_rows(others, H))
        g.update(last_rows(M4Series([data.ids[i] for i in picked], part, None), n))
        short = [alone(v[-n:], params, H) for v in part]
        rows += [row("titans global, joined", forecasts(g, [data.ids[i] for i in picked]), fit_seconds=secs,
                     settings=f"unseen at fit; joined with the last {n} values"),
                 row("titans alone, same rows", np.stack([p for p, _ in short]), fit_seconds=sum(s for _, s in short),
                     settings=f"fitted on the last {n} values")]
    return rows


def candidates(specs: list[str]) -> list[dict]:
    """The combinations of `KEY=V1,V2` settings (integers as integers, `none` as None)."""
    def value(text: str):
        return None if text == "none" else int(text) if text.lstrip("-").isdigit() else text
    keys, values = [], []
    for spec in specs:
        key, _, options = spec.partition("=")
        keys.append(key.replace("-", "_"))
        values.append([value(v) for v in options.split(",")])
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)] or [{}]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frequency", default="Weekly", choices=sorted(M4_HORIZON))
    ap.add_argument("--data", default=str(M4), help="folder of <Frequency>-train.csv and <Frequency>-test.csv")
    ap.add_argument("--select", nargs="*", default=[], metavar="KEY=V1,V2",
                    help="forecaster settings to choose from on validation (default: the defaults)")
    ap.add_argument("--lookback", type=int, default=52, help="values each forecast sees (default 52)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--per-series", type=int, default=36, help="series (every k-th) fitted alone as a peer")
    ap.add_argument("--unseen", action="store_true",
                    help="also fit the global model without those series and let them join it through update")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    H, m = M4_HORIZON[args.frequency], M4_SEASONALITY[args.frequency]
    data = read_m4(Path(args.data) / f"{args.frequency}-train.csv", Path(args.data) / f"{args.frequency}-test.csv")
    held = np.stack([v[-H:] for v in data.train])
    before = [v[:-H] for v in data.train]
    base = dict(lookback=args.lookback, max_epochs=args.epochs, random_state=args.seed)
    naive = {"val": scores(np.stack([np.repeat(v[-1], H) for v in before]), held, before, m),
             "test": scores(np.stack([np.repeat(v[-1], H) for v in data.train]), data.test, data.train, m)}
    rows = [{"model": "naive", "split": split, **naive[split]} for split in ("val", "test")]
    best = None
    for cand in candidates(args.select):
        params = {**base, **cand}
        f, secs = fit_global(data, params, H)
        val = scores(forecasts(f, data.ids), held, before, m)
        rows.append({"model": "titans global", "split": "val", "settings": cand, **val, "owa": owa(val, naive["val"]),
                     "fit_seconds": secs, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        if best is None or rows[-1]["owa"] < best[0]:
            best = rows[-1]["owa"], params, f
    _, params, f = best
    f.update(last_rows(data, H))  # the validation rows stream into the memory; no refit
    test = scores(forecasts(f, data.ids), data.test, data.train, m)
    rows.append({"model": "titans global", "split": "test", "settings": params, **test, "owa": owa(test, naive["test"])})
    if args.per_series:
        picked = list(range(0, len(data.ids), max(1, len(data.ids) // args.per_series)))[: args.per_series]
        rows += sample_rows(data, f, params, picked, H, m, args.unseen)
    print(f"M4 {args.frequency}: {len(data.ids)} series, horizon {H}")
    print(f"{'model':<20}{'split':<6}{'series':>7}{'sMAPE':>9}{'MASE':>8}{'OWA':>7}  settings")
    for r in rows:
        print(f"{r['model']:<20}{r['split']:<6}{r.get('series', len(data.ids)):>7}{r['smape']:>9.3f}{r['mase']:>8.3f}"
              f"{r.get('owa', float('nan')):>7.3f}  {r.get('settings', '')}"
              + (f"  fit {r['fit_seconds']:.0f} s" if "fit_seconds" in r else "")
              + (f", peak {r['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in r else ""))
    result = {"dataset": f"M4 {args.frequency}", "machine": platform.processor() or platform.machine(), "results": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()

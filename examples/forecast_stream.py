"""Forecast a real series, then stream new observations into the model's memory and forecast again.

ETTh1 (bundled, CC BY-ND 4.0): hourly transformer load and oil temperature. Writes out/forecast.png.
"""
from pathlib import Path

import numpy as np

from titans_ts.datasets import load_bundled_ett
from titans_ts.forecasting import TitansForecaster
from titans_ts.forecasting.cli import plot

frame = load_bundled_ett().select("date", "HUFL", "OT").head(2600)
history, arriving = frame.head(2400), frame.slice(2400)

f = TitansForecaster(horizon=24, lookback=96, variant="mal", period=24, max_epochs=2, random_state=0)  # daily cycle
f.fit(history)
first = f.predict()  # a polars frame with the next 24 time stamps
truth = arriving.head(24)
print(f"forecast from {history['date'][-1]}: MSE {np.mean((first['OT'] - truth['OT']).to_numpy() ** 2):.3f} on OT")

for hour in range(0, 48, 12):  # twelve new hourly rows at a time: the memory learns, no retraining
    f.update(arriving.slice(hour, 12))
later = f.predict()
truth = arriving.slice(48, 24)
print(f"after streaming 48 new rows: MSE {np.mean((later['OT'] - truth['OT']).to_numpy() ** 2):.3f} on OT")

lo, hi = f.predict_interval(coverage=0.9)
out = later.with_columns(*[lo[c].alias(f"{c}_lower") for c in ("HUFL", "OT")],
                         *[hi[c].alias(f"{c}_upper") for c in ("HUFL", "OT")])
Path("out").mkdir(exist_ok=True)
plot(frame.head(2448), out, f, ["HUFL", "OT"], "out/forecast.png", 0.9)
print("wrote out/forecast.png: history, forecast and its 90% interval")

# pandas: build a frame, group and aggregate, a rolling window, CSV through a temporary file.
import os
import tempfile

import numpy as np
import pandas as pd

df = pd.DataFrame({
    "team": ["a", "b", "a", "c", "b", "a"] * 50,
    "score": np.arange(300) % 17,
    "time": pd.date_range("2024-01-01", periods=300, freq="h"),
})
g = df.groupby("team")["score"].agg(["count", "sum", "mean"])
for team, row in g.iterrows():
    print("group_%s=%d,%d,%.4f" % (team, row["count"], row["sum"], row["mean"]))
print("rolling_last=%.4f" % df["score"].rolling(10).mean().iloc[-1])
print("daily_rows=%d" % len(df.set_index("time").resample("D").sum(numeric_only=True)))
path = os.path.join(tempfile.gettempdir(), "frame.csv")
df.to_csv(path, index=False)
back = pd.read_csv(path, parse_dates=["time"])
print("csv_roundtrip=%s" % back.equals(df))

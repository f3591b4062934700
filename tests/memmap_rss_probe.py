"""Trains one epoch on a sparse >= 2 GiB uint8 memmap and prints its RssAnon baseline and peak (kB) as JSON.

    python memmap_rss_probe.py PATH    (run by tests/test_memmap.py in a fresh interpreter; deletes PATH)
"""
import json
import os
import sys
import threading
import time

import numpy as np

import neurocore as nc

ROWS, COLS = 32768, 65536   # 2 GiB of uint8


def rss_anon_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


path = sys.argv[1]
with open(path, "wb") as f:   # sparse: only a few rows hold data, the holes read as zeros
    f.truncate(ROWS * COLS)
    rng = np.random.default_rng(0)
    for r in range(0, ROWS, ROWS // 16):
        f.seek(r * COLS)
        f.write(rng.integers(0, 256, COLS, dtype=np.uint8).tobytes())
try:
    x = np.memmap(path, dtype=np.uint8, mode="r", shape=(ROWS, COLS))
    y = np.arange(ROWS) % 2
    model = nc.Sequential([nc.Dense(COLS, 2)], seed=0)
    model.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0, scale=1 / 255)   # warm-up: pools, workspaces
    base = rss_anon_kb()
    peak, done = [base], threading.Event()

    def sample():
        while not done.wait(0.005):
            peak.append(rss_anon_kb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0, scale=1 / 255, seed=0)
    fit_s = time.perf_counter() - start
    out = model.predict(x[:4096], batch_size=64, scale=1 / 255)
    done.set()
    sampler.join()
    peak.append(rss_anon_kb())
    print(json.dumps({"bytes": ROWS * COLS, "fit_s": fit_s, "base_kb": base, "peak_kb": max(peak), "loss": history["loss"][0],
                      "finite_predictions": bool(np.isfinite(out).all())}))
finally:
    os.remove(path)

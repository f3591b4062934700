"""Recurrent layers on two small problems: an LSTM forecasting a signal 20 steps ahead, and a GRU reading
the digits row by row.

    pip install ".[plot]" && python examples/sequence_forecast.py [--out sequence_forecast.png] [--quick]

1. Forecasting. Every window is a sum of two sines whose frequencies, phases and amplitudes are drawn
   afresh per window, plus noise. From the previous 50 values the LSTM(1 -> 64) + Dense(64, 20) predicts
   the next 20. The baseline is the best linear autoregressive predictor (least squares on the same 50
   lags): a pure sine obeys a linear recurrence, but its coefficients depend on the frequency, so one
   linear rule cannot serve windows of different frequencies, while the LSTM infers the frequency from the
   window. Both are scored by mean squared error on held-out windows; the PNG shows forecasts against the
   truth.
2. Digits as sequences: each 8x8 image is read as T = 8 rows of 8 pixels by a GRU(8 -> 64) + Dense(64, 10).

--quick trains briefly (a smoke test: the printed numbers are then not the point).
"""
import argparse
import os

import numpy as np

import neurocore as nc
from neurocore.datasets import load_digits, train_test_split

LAGS, HORIZON = 50, 20


def make_windows(n, rng, noise=0.1):
    """n windows of LAGS + HORIZON values: two sines with per-window frequency, phase, amplitude, + noise."""
    t = np.arange(LAGS + HORIZON)
    freq = rng.uniform(0.03, 0.15, (n, 2))
    phase = rng.uniform(0, 2 * np.pi, (n, 2))
    amp = rng.uniform(0.4, 1.0, (n, 2))
    clean = (amp[:, :1] * np.sin(2 * np.pi * freq[:, :1] * t + phase[:, :1])
             + amp[:, 1:] * np.sin(2 * np.pi * freq[:, 1:] * t + phase[:, 1:]))
    series = clean + noise * rng.standard_normal(clean.shape)
    return series[:, :LAGS], clean[:, LAGS:], series[:, LAGS:]


def linear_ar(x_train, y_train, x_test):
    """Least-squares linear predictor of the next HORIZON values from the LAGS before (with an intercept)."""
    design = np.hstack([x_train, np.ones((len(x_train), 1))])
    coef, *_ = np.linalg.lstsq(design, y_train, rcond=None)
    return np.hstack([x_test, np.ones((len(x_test), 1))]) @ coef


def forecast(args, rng):
    n_train, epochs = (1000, 3) if args.quick else (4000, 20)
    x_train, _, y_train = make_windows(n_train, rng)
    x_test, clean_test, y_test = make_windows(1000, rng)
    model = nc.Sequential([nc.LSTM(1, 64), nc.Dense(64, HORIZON)], input_shape=(LAGS, 1), seed=0)
    model.fit(x_train[..., None], y_train, loss="mse", optimizer=nc.Adam(lr=3e-3, clip_norm=1.0), epochs=epochs,
              batch_size=64, seed=0, schedule=nc.schedules.CosineAnnealing(epochs), verbose=0)
    pred = model.predict(x_test[..., None])
    ar = linear_ar(x_train, y_train, x_test)
    mse_lstm = float(np.mean((pred - y_test) ** 2))
    mse_ar = float(np.mean((ar - y_test) ** 2))
    print(f"forecast {HORIZON} steps ahead from {LAGS}: test MSE  LSTM {mse_lstm:.4f}   linear AR {mse_ar:.4f}   "
          f"(noise floor {0.1 ** 2:.4f})")
    return x_test, clean_test, y_test, pred, ar, mse_lstm, mse_ar


def digits(args):
    x, y = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(x.reshape(-1, 8, 8), y, test_size=0.25, seed=0)
    model = nc.Sequential([nc.GRU(8, 64), nc.Dense(64, 10)], input_shape=(8, 8), seed=0)
    model.fit(x_train, y_train, optimizer=nc.Adam(lr=3e-3), epochs=3 if args.quick else 30, batch_size=32,
              seed=0, verbose=0)
    acc = model.evaluate(x_test, y_test)["accuracy"]
    print(f"digits read as 8 rows of 8 pixels by a GRU: test accuracy {acc:.3f}")
    return acc


def plot(path, x_test, clean_test, y_test, pred, ar, mse_lstm, mse_ar):
    try:
        import matplotlib
    except ImportError:
        print('matplotlib is not installed, no PNG written: pip install "neurocore[plot]"')
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharex=True)
    t_in, t_out = np.arange(LAGS), np.arange(LAGS, LAGS + HORIZON)
    for k, ax in enumerate(axes.flat):
        ax.plot(t_in, x_test[k], color="0.6", lw=1, label="input (noisy)")
        ax.plot(t_out, y_test[k], ".", color="0.4", ms=4, label="future (noisy)")
        ax.plot(t_out, clean_test[k], color="k", lw=1, label="future (clean)")
        ax.plot(t_out, pred[k], color="C0", lw=2, label="LSTM")
        ax.plot(t_out, ar[k], color="C3", lw=1.5, ls="--", label="linear AR")
        ax.axvline(LAGS - 0.5, color="0.8", lw=0.8)
    axes[0, 0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{HORIZON}-step forecast of held-out windows: test MSE LSTM {mse_lstm:.4f}, linear AR {mse_ar:.4f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "sequence_forecast.png"),
                        help="where to write the PNG (default: next to this script)")
    parser.add_argument("--quick", action="store_true", help="train briefly (a smoke test)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = forecast(args, rng)
    plot(os.path.abspath(args.out), *results)
    digits(args)


if __name__ == "__main__":
    main()

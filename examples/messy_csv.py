"""Write a messy customer-churn CSV, like the ones people actually have, for trying `neurocore train`.

    python examples/messy_csv.py churn.csv [ROWS]

Text labels ("yes"/"no"), three text categorical columns, an integer-coded region, a yes/no boolean, ~5%
missing cells (empty, "NA" or "?") in numeric and categorical columns, an identifier column, an all-missing
column, a constant column, Windows line endings and a UTF-8 byte-order mark. The tests train on it too.
"""
from __future__ import annotations

import sys

import numpy as np

CITIES = ["Paris", "Lyon", "Marseille", "Lille", "Nantes"]
PLANS = ["basic", "standard", "premium"]
PAYMENTS = ["card", "bank transfer", "cheque", "paypal"]
COLUMNS = ["customer_id", "age", "city", "plan", "tenure_months", "monthly_charges", "support_calls",
           "payment", "region", "paperless", "notes", "survey_version", "churn"]


def write_messy_csv(path, n_rows=2000, seed=0, missing=0.05):
    """Write the file; returns the true labels ("yes"/"no") in row order."""
    rng = np.random.default_rng(seed)
    n = n_rows
    age = rng.integers(18, 80, n)
    tenure = rng.integers(0, 72, n)
    charges = rng.uniform(20, 120, n).round(2)
    calls = rng.poisson(1.5, n)
    city = rng.integers(0, len(CITIES), n)
    plan = rng.choice(len(PLANS), n, p=[0.5, 0.3, 0.2])
    payment = rng.integers(0, len(PAYMENTS), n)
    region = rng.integers(1, 5, n)
    paperless = rng.integers(0, 2, n)
    logit = (1.6 * (calls - 1.5) - 0.06 * (tenure - 36) + np.array([1.2, 0.0, -1.8])[plan]
             + np.array([0.0, 0.0, 1.5, 0.3])[payment] + 0.03 * (charges - 70) + np.array([0, 0.8, 0, -0.8])[region - 1]
             + 0.5 * paperless - 0.5)
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")

    columns = {
        "customer_id": [f"C{100000 + i}" for i in range(n)],
        "age": age.astype(str).tolist(),
        "city": [CITIES[i] for i in city],
        "plan": [PLANS[i] for i in plan],
        "tenure_months": tenure.astype(str).tolist(),
        "monthly_charges": [f"{v:.2f}" for v in charges],
        "support_calls": calls.astype(str).tolist(),
        "payment": [PAYMENTS[i] for i in payment],
        "region": region.astype(str).tolist(),
        "paperless": ["yes" if p else "no" for p in paperless],
        "notes": [""] * n,
        "survey_version": ["3"] * n,
    }
    for name in ["age", "city", "plan", "tenure_months", "monthly_charges", "support_calls", "payment"]:
        holes = np.flatnonzero(rng.random(n) < missing)
        for i, row in enumerate(holes):
            columns[name][row] = ("", "NA", "?")[i % 3]
    columns["churn"] = churn.tolist()
    lines = [",".join(COLUMNS)]
    for i in range(n):
        cells = [columns[name][i] for name in COLUMNS]
        lines.append(",".join(f'"{c}"' if " " in c else c for c in cells))
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        f.write("\r\n".join(lines) + "\r\n")
    return churn


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python examples/messy_csv.py OUT.csv [ROWS]")
    write_messy_csv(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 2000)
    print(f"wrote {sys.argv[1]}")

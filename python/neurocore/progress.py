"""The per-epoch progress bar of fit (tqdm): samples/s, running loss, and the epoch's metrics at the end."""
from __future__ import annotations


class EpochProgress:
    def __init__(self, n_samples: int, epoch: int, epochs: int, enabled: bool):
        self._bar = None
        self._seen = 0
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=n_samples, desc=f"epoch {epoch + 1}/{epochs}", unit="sample",
                             unit_scale=True, leave=True, dynamic_ncols=True)

    def advance(self, samples_done: int, running_loss: float) -> None:
        if self._bar is not None:
            self._bar.update(samples_done - self._seen)
            self._bar.set_postfix(loss=f"{running_loss:.4f}", refresh=False)
        self._seen = samples_done

    def finish(self, metrics: dict) -> None:
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items()}, refresh=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()
        return False

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


torch.set_num_threads(2)


@pytest.fixture(scope="session")
def pair():
    from napari_colorize._sample_data import sample_pair

    grey, ref, truth = sample_pair()
    return grey, ref, truth


@pytest.fixture(scope="session")
def small_pair(pair):
    grey, ref, truth = pair
    return grey[::4, ::4].copy(), ref[::4, ::4].copy(), truth[::4, ::4].copy()


@pytest.fixture(scope="session")
def exemplar_random():
    import napari_colorize as nc

    torch.manual_seed(0)
    return nc.load_model("exemplar", device="cpu", pretrained=False)


@pytest.fixture(scope="session")
def histogram_random():
    import napari_colorize as nc

    torch.manual_seed(0)
    return nc.load_model("histogram", device="cpu", pretrained=False)


@pytest.fixture
def wait_idle(qtbot):
    """Wait until a widget's job is over. The widget drops its worker in the slot connected to
    ``finished``, so this cannot miss an end that came before the wait began (waiting on the
    ``finished`` signal itself could, for a job quicker than the line that starts the wait)."""

    def wait(widget, timeout: int = 60000) -> None:
        assert widget.worker is not None, "the widget started no job"
        qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)

    return wait


@pytest.fixture
def models(monkeypatch):
    """A fresh model cache for the widgets' workers (loaded models are served from it by name)."""
    from napari_colorize._widgets import _workers

    cache = _workers.ModelCache()
    monkeypatch.setattr(_workers, "MODELS", cache)
    return cache


@pytest.fixture
def rng():
    return np.random.default_rng(0)
